#include "experiments/torch_runners.h"

#include "experiments/ablation/ablation.h"
#include "experiments/harvest/harvest.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/pretrain/pretrain.h"

namespace seedgrid {

void RegisterTorchRunners(RunnerRegistry& runners) {
  runners.Add("pretrain", RunPretrain);
  runners.Add("lora_steer", RunLoraSteer);
  // ---- ablation and harvest: their owners register their runners here. ----
  runners.Add("harvest", RunHarvest);
  RegisterAblationRunner(runners);
}

}  // namespace seedgrid
