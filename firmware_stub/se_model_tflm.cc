// se_model_tflm.cc: see se_model_tflm.h. C++17, against the TensorFlow Lite Micro API
// (MicroInterpreter, MicroMutableOpResolver) and the Ethos-U core driver (ethosu_driver.h).
// Compiled only with TFLM_ROOT and ETHOSU_DRIVER (firmware_stub/Makefile); not built in this
// repository's CI, which has no TFLM source tree (see README.md).
#include "se_model_tflm.h"

#include <cstring>
#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifdef SE_WITH_ETHOSU
extern "C" {
#include "ethosu_driver.h"
}
#endif

#ifndef SE_TFLM_CPU_OPS
// 1: also register the CPU kernels of the uncompiled streaming models (GRU/LSTM cells as
// FULLY_CONNECTED, LOGISTIC, TANH, MUL, ADD, SUB, SPLIT, SPLIT_V, ...), so the same wrapper
// runs a model that Vela left partly (or wholly) on the Cortex-M. 0: the Ethos-U op only.
#define SE_TFLM_CPU_OPS 1
#endif

namespace {

constexpr unsigned int kNumOps = 1 + (SE_TFLM_CPU_OPS ? 13 : 0);
using Resolver = tflite::MicroMutableOpResolver<kNumOps>;
constexpr TfLiteType type_of(int bits) { return bits == 8 ? kTfLiteInt8 : kTfLiteInt16; }

// Static storage, constructed in place by se_model_tflm_init (no heap).
alignas(Resolver) unsigned char resolver_storage[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) unsigned char interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* interpreter = nullptr;
TfLiteTensor* features_in = nullptr;
TfLiteTensor* mask_out = nullptr;
TfLiteTensor* state_in[SE_STATE_TABLE_LEN] = {};
TfLiteTensor* state_out[SE_STATE_TABLE_LEN] = {};

// Each tensor has its own type in model_io.h (int8, or int16 for 16x8; mixed in a mixed-precision model).
bool matches(const TfLiteTensor* t, int bits, size_t elements, float scale, int32_t zero_point) {
  return t != nullptr && t->type == type_of(bits) && t->bytes == elements * (static_cast<size_t>(bits) / 8u) &&
         t->data.raw != nullptr && t->params.scale == scale && t->params.zero_point == zero_point;
}

TfLiteStatus register_ops(Resolver& r) {
  if (r.AddEthosU() != kTfLiteOk) return kTfLiteError;
#if SE_TFLM_CPU_OPS
  if (r.AddFullyConnected() != kTfLiteOk || r.AddLogistic() != kTfLiteOk || r.AddTanh() != kTfLiteOk ||
      r.AddMul() != kTfLiteOk || r.AddAdd() != kTfLiteOk || r.AddSub() != kTfLiteOk ||
      r.AddSplit() != kTfLiteOk || r.AddSplitV() != kTfLiteOk || r.AddReshape() != kTfLiteOk ||
      r.AddConcatenation() != kTfLiteOk || r.AddStridedSlice() != kTfLiteOk ||
      r.AddQuantize() != kTfLiteOk || r.AddDequantize() != kTfLiteOk) {
    return kTfLiteError;
  }
#endif
  return kTfLiteOk;
}

}  // namespace

extern "C" int se_model_tflm_init(const void* model_data, uint8_t* arena, size_t arena_bytes) {
  interpreter = nullptr;
  const tflite::Model* model = tflite::GetModel(model_data);
  if (model == nullptr || model->version() != TFLITE_SCHEMA_VERSION) return SE_TFLM_BAD_SCHEMA;

  Resolver* resolver = new (resolver_storage) Resolver();
  if (register_ops(*resolver) != kTfLiteOk) return SE_TFLM_OP_RESOLVER;

  tflite::MicroInterpreter* interp =
      new (interpreter_storage) tflite::MicroInterpreter(model, *resolver, arena, arena_bytes);
  if (interp->AllocateTensors() != kTfLiteOk) return SE_TFLM_ALLOCATE;

  // Inputs and outputs by POSITION (TFLM has no names), checked against model_io.h: a header
  // generated from another model fails here instead of feeding states to the wrong tensors.
  if (interp->inputs_size() != static_cast<size_t>(SE_NUM_INPUTS) ||
      interp->outputs_size() != static_cast<size_t>(SE_NUM_OUTPUTS)) {
    return SE_TFLM_IO_MISMATCH;
  }
  features_in = interp->input(SE_FEATURES_POSITION);
  mask_out = interp->output(SE_MASK_POSITION);
  if (!matches(features_in, SE_FEATURES_BITS, SE_BINS, SE_FEATURES_SCALE, SE_FEATURES_ZERO_POINT) ||
      !matches(mask_out, SE_MASK_BITS, SE_BINS, SE_MASK_SCALE, SE_MASK_ZERO_POINT)) {
    return SE_TFLM_IO_MISMATCH;
  }
  for (int k = 0; k < SE_NUM_STATES; ++k) {
    const se_state_pair_t& p = se_state_pairs[k];
    state_in[k] = interp->input(p.input_position);
    state_out[k] = interp->output(p.output_position);
    if (!matches(state_in[k], p.input_bits, p.size, p.input_scale, p.input_zero_point) ||
        !matches(state_out[k], p.output_bits, p.size, p.output_scale, p.output_zero_point)) {
      return SE_TFLM_IO_MISMATCH;
    }
  }
  interpreter = interp;
  return SE_TFLM_OK;
}

extern "C" int se_model_tflm_invoke(se_model_io_t* io, void* ctx) {
  (void)ctx;
  if (interpreter == nullptr) return SE_TFLM_NOT_READY;
  std::memcpy(features_in->data.raw, io->features, sizeof(io->features));
  for (int k = 0; k < SE_NUM_STATES; ++k) {
    const se_state_pair_t& p = se_state_pairs[k];
    std::memcpy(state_in[k]->data.raw, se_state_in(io, &p), state_in[k]->bytes);
  }
  if (interpreter->Invoke() != kTfLiteOk) return SE_TFLM_INVOKE;
  std::memcpy(io->mask, mask_out->data.raw, sizeof(io->mask));
  for (int k = 0; k < SE_NUM_STATES; ++k) {
    const se_state_pair_t& p = se_state_pairs[k];
    std::memcpy(se_state_out(io, &p), state_out[k]->data.raw, state_out[k]->bytes);
  }
  return SE_TFLM_OK;
}

extern "C" size_t se_model_tflm_arena_used(void) {
  return interpreter != nullptr ? interpreter->arena_used_bytes() : 0;
}

#ifdef SE_WITH_ETHOSU
namespace {
struct ethosu_driver npu_driver;
}

extern "C" int se_ethosu_init(void* npu_base_address, const void* fast_memory, size_t fast_memory_bytes) {
  // secure_enable = 1, privilege_enable = 1: change for a non-secure / unprivileged build.
  return ethosu_init(&npu_driver, npu_base_address, fast_memory, fast_memory_bytes, 1, 1);
}

extern "C" void se_ethosu_irq_handler(void) {
  ethosu_irq_handler(&npu_driver);
}
#endif
