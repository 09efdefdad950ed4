// The `train:` params pretrain and lora_steer share, and the `model:` params of the kinds that
// load a checkpoint: their defaults and checks (no LibTorch; the kinds' config halves use them).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/types.h"

namespace seedgrid {

// {steps, batch, lr, weight_decay 0.01, warmup, schedule cosine, grad_clip 1}.
Json TrainDefaults(int64_t steps, int64_t batch, double lr, int64_t warmup);

// The meaning of each train.* param (KindConfig::param_docs), appended to `docs`.
void AddTrainParamDocs(std::vector<std::pair<std::string, std::string>>& docs);

// Appends a "train.<key>: message" to `problems` per bad value of `train`.
void CheckTrain(const Json& train, std::vector<std::string>& problems);

// `model:` of a kind that loads a checkpoint: {dtype: float32}. model.dtype is the compute
// dtype, float32 | bfloat16 (Model::Load; adapters and dW stay float32).
Json ModelLoadDefaults();

// Appends a "model.dtype: message" to `problems` when `model` has a bad dtype.
void CheckModelLoad(const Json& model, std::vector<std::string>& problems);

}  // namespace seedgrid
