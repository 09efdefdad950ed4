// The `train:` params pretrain and lora_steer share: their defaults and checks (no LibTorch;
// both kinds' config halves use them).
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

}  // namespace seedgrid
