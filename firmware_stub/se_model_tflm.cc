// se_model_tflm.cc: see se_model_tflm.h. C++17, against the TensorFlow Lite Micro API
// (MicroInterpreter, MicroOpResolver: the generated model_ops.cc builds each model's resolver)
// and the Ethos-U core driver (ethosu_driver.h).
// Compiled only with TFLM_ROOT and ETHOSU_DRIVER (firmware_stub/Makefile); not built in this
// repository's CI, which has no TFLM source tree (see README.md).
#include "se_model_tflm.h"

#include <cstring>
#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifdef SE_WITH_ETHOSU
extern "C" {
#include "ethosu_driver.h"
}
#endif

namespace {

constexpr TfLiteType type_of(int bits) { return bits == 8 ? kTfLiteInt8 : kTfLiteInt16; }

}  // namespace

// One model: its interpreter, constructed in place (no heap), and its tensors by position.
struct se_tflm {
  const se_model_desc_t* desc;
  alignas(tflite::MicroInterpreter) unsigned char storage[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter;
  TfLiteTensor* features_in;
  TfLiteTensor* mask_out;
  TfLiteTensor* state_in[SE_MAX_STATES];
  TfLiteTensor* state_out[SE_MAX_STATES];
};

namespace {

se_tflm models[SE_TFLM_MAX_MODELS];
int models_used = 0;

bool matches(const TfLiteTensor* t, int bits, size_t elements, float scale, int32_t zero_point) {
  return t != nullptr && t->type == type_of(bits) && t->bytes == elements * (static_cast<size_t>(bits) / 8u) &&
         t->data.raw != nullptr && t->params.scale == scale && t->params.zero_point == zero_point;
}

// Inputs and outputs by POSITION (TFLM has no names), checked against the descriptor: a descriptor of
// another model fails here instead of feeding states to the wrong tensors.
int bind_tensors(se_tflm* m) {
  const se_model_desc_t* d = m->desc;
  tflite::MicroInterpreter* interp = m->interpreter;
  if (interp->inputs_size() != d->num_inputs || interp->outputs_size() != d->num_outputs ||
      d->num_states > SE_MAX_STATES) {
    return SE_TFLM_IO_MISMATCH;
  }
  m->features_in = interp->input(d->features.position);
  m->mask_out = interp->output(d->mask.position);
  if (!matches(m->features_in, d->features.bits, d->features.elements, d->features.scale, d->features.zero_point) ||
      !matches(m->mask_out, d->mask.bits, d->mask.elements, d->mask.scale, d->mask.zero_point)) {
    return SE_TFLM_IO_MISMATCH;
  }
  for (int k = 0; k < d->num_states; ++k) {
    const se_state_pair_t& p = d->states[k];
    m->state_in[k] = interp->input(p.input_position);
    m->state_out[k] = interp->output(p.output_position);
    if (!matches(m->state_in[k], p.input_bits, p.size, p.input_scale, p.input_zero_point) ||
        !matches(m->state_out[k], p.output_bits, p.size, p.output_scale, p.output_zero_point)) {
      return SE_TFLM_IO_MISMATCH;
    }
  }
  return SE_TFLM_OK;
}

}  // namespace

extern "C" se_tflm_t* se_model_tflm_init(const se_model_desc_t* desc, uint8_t* arena, size_t arena_bytes,
                                         int* status) {
  int ignored;
  int& result = status != nullptr ? *status : ignored;
  if (models_used >= SE_TFLM_MAX_MODELS) {
    result = SE_TFLM_NO_SLOT;
    return nullptr;
  }
  const tflite::Model* model = tflite::GetModel(desc->model_data);
  if (model == nullptr || model->version() != TFLITE_SCHEMA_VERSION) {
    result = SE_TFLM_BAD_SCHEMA;
    return nullptr;
  }
  // the generated resolver (model_ops.cc): exactly this model's op types
  const auto* resolver =
      static_cast<const tflite::MicroOpResolver*>(desc->op_resolver != nullptr ? desc->op_resolver() : nullptr);
  if (resolver == nullptr) {
    result = SE_TFLM_OP_RESOLVER;
    return nullptr;
  }
  se_tflm* m = &models[models_used];
  m->desc = desc;
  m->interpreter = new (m->storage) tflite::MicroInterpreter(model, *resolver, arena, arena_bytes);
  if (m->interpreter->AllocateTensors() != kTfLiteOk) {
    result = SE_TFLM_ALLOCATE;
    return nullptr;
  }
  result = bind_tensors(m);
  if (result != SE_TFLM_OK) {
    return nullptr;
  }
  ++models_used;
  return m;
}

extern "C" int se_model_tflm_invoke(se_model_io_t* io, void* ctx) {
  se_tflm* m = static_cast<se_tflm*>(ctx);
  if (m == nullptr || m->interpreter == nullptr) return SE_TFLM_NOT_READY;
  const se_model_desc_t* d = m->desc;
  std::memcpy(m->features_in->data.raw, io->features, m->features_in->bytes);
  for (int k = 0; k < d->num_states; ++k) {
    std::memcpy(m->state_in[k]->data.raw, se_state_in(io, &d->states[k]), m->state_in[k]->bytes);
  }
  if (m->interpreter->Invoke() != kTfLiteOk) return SE_TFLM_INVOKE;
  std::memcpy(io->mask, m->mask_out->data.raw, m->mask_out->bytes);
  for (int k = 0; k < d->num_states; ++k) {
    std::memcpy(se_state_out(io, &d->states[k]), m->state_out[k]->data.raw, m->state_out[k]->bytes);
  }
  return SE_TFLM_OK;
}

extern "C" size_t se_model_tflm_arena_used(const se_tflm_t* model) {
  return model != nullptr && model->interpreter != nullptr ? model->interpreter->arena_used_bytes() : 0;
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
