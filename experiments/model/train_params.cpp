#include "experiments/model/train_params.h"

#include <fmt/format.h>

namespace seedgrid {

Json TrainDefaults(int64_t steps, int64_t batch, double lr, int64_t warmup) {
  return {{"steps", steps},   {"batch", batch},       {"lr", lr},        {"weight_decay", 0.01},
          {"warmup", warmup}, {"schedule", "cosine"}, {"grad_clip", 1.0}};
}

void CheckTrain(const Json& t, std::vector<std::string>& p) {
  if (t.at("steps").get<int64_t>() < 1) p.push_back("train.steps: must be >= 1");
  if (t.at("batch").get<int64_t>() < 1) p.push_back("train.batch: must be >= 1");
  if (!(t.at("lr").get<double>() >= 0)) p.push_back("train.lr: must be >= 0");
  if (t.at("weight_decay").get<double>() < 0) p.push_back("train.weight_decay: must be >= 0");
  if (t.at("warmup").get<int64_t>() < 0) p.push_back("train.warmup: must be >= 0");
  const auto s = t.at("schedule").get<std::string>();
  if (s != "cosine" && s != "constant")
    p.push_back(fmt::format("train.schedule: '{}' is not cosine or constant", s));
  if (t.at("grad_clip").get<double>() < 0) p.push_back("train.grad_clip: must be >= 0 (0: off)");
}

void AddTrainParamDocs(std::vector<std::pair<std::string, std::string>>& docs) {
  docs.insert(docs.end(), {{"train.steps", "optimizer (AdamW) steps"},
                           {"train.batch", "rows per step"},
                           {"train.lr", "peak learning rate"},
                           {"train.weight_decay", "AdamW weight decay"},
                           {"train.warmup", "steps of linear warm-up"},
                           {"train.schedule", "after warm-up: cosine (decay to 0) or constant"},
                           {"train.grad_clip", "clip of the gradient's global norm (0: off)"}});
}

Json ModelLoadDefaults() { return {{"dtype", "float32"}}; }

void CheckModelLoad(const Json& model, std::vector<std::string>& p) {
  const Json& dt = model.at("dtype");
  if (!dt.is_string() || (dt != "float32" && dt != "bfloat16"))
    p.push_back(fmt::format("model.dtype: {} is not float32 or bfloat16", dt.dump()));
}

}  // namespace seedgrid
