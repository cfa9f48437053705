/* se_desc_from_io.c: a model descriptor (se_model_desc.h) made at compile time from a model_io.h, for a
 * MODEL_IO folder without the generated model_desc.c (example/, bundles written before descriptors).
 * The symbol is SE_DESC (default se_model_desc); no model bytes (model_data NULL) and no op resolvers:
 * enough for the frame loop and the golden checks, which never call the model's interpreter. */
#include <stddef.h>

#include "model_io.h"
#include "se_model_desc.h"

#ifndef SE_MASK_ELEMENTS /* a model_io.h written before complex masks */
#define SE_MASK_ELEMENTS SE_BINS
#endif

#ifndef SE_DESC
#define SE_DESC se_model_desc
#endif

const se_model_desc_t SE_DESC = {
    SE_MODEL_DESC_FORMAT,
    SE_MODEL_NAME, SE_IO_DTYPE, SE_MODEL_SHA256,
    NULL, NULL, NULL, NULL,
    0u, 0u,
    SE_SAMPLE_RATE, SE_FFT_SIZE, SE_HOP, SE_BINS, SE_LOG_FLOOR,
    SE_NUM_INPUTS, SE_NUM_OUTPUTS,
    {SE_FEATURES_NAME, SE_FEATURES_POSITION, SE_FEATURES_BITS, SE_BINS, SE_FEATURES_SCALE, SE_FEATURES_ZERO_POINT},
    {SE_MASK_NAME, SE_MASK_POSITION, SE_MASK_BITS, SE_MASK_ELEMENTS, SE_MASK_SCALE, SE_MASK_ZERO_POINT},
    SE_NUM_STATES, se_state_pairs,
    SE_STATE_IN8_ELEMENTS, SE_STATE_IN16_ELEMENTS, SE_STATE_OUT8_ELEMENTS, SE_STATE_OUT16_ELEMENTS,
};
