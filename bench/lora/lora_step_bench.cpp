// seedgrid's side of bench/lora: one LoRA training step (forward, backward, AdamW) of the
// Llama-style decoder, through the same code lora_steer trains with (experiments/model). The
// PyTorch peer is lora_py.py; run.py runs both alternately and compares.
//
//   lora_step_bench SIZE INIT STEPS WARMUP THREADS
// SIZE small|large; INIT the safetensors file lora_py.py dumps (base weights by HF name, LoRA
// factors "lora.<hf name>.A|B", tokens). Prints one JSON line like lora_py.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "experiments/model/adapters.h"
#include "experiments/model/runtime_env.h"
#include "experiments/model/safetensors.h"

namespace {

using namespace seedgrid;

ModelConfig ConfigFor(const std::string& size) {
  if (size == "small") return ModelConfig::FromParams(Json::object());  // the demo model
  if (size == "large")
    return ModelConfig::FromParams({{"vocab_size", 512},
                                    {"d_model", 512},
                                    {"n_layers", 8},
                                    {"n_heads", 8},
                                    {"d_mlp", 1376},
                                    {"context", 128}});
  throw std::runtime_error("size must be small or large");
}

torch::Tensor ReadF32(const SafetensorsFile& f, const std::string& name) {
  const auto& v = f.Get(name);
  auto t = torch::empty(v.shape, torch::kFloat32);
  ConvertToFloat32(v, t.data_ptr<float>(), f.path());
  return t;
}

int Main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s small|large INIT STEPS WARMUP THREADS\n", argv[0]);
    return 2;
  }
  const std::string size = argv[1];
  const int steps = std::atoi(argv[3]), warmup = std::max(1, std::atoi(argv[4]));
  const int threads = std::atoi(argv[5]);
  ConfigureTorchProcess(threads);

  Model model(ConfigFor(size), torch::kCPU);
  AdapterTargets targets;
  targets.modules.assign(std::begin(kAllModuleKinds), std::end(kAllModuleKinds));
  LoraOptions lora_opt;
  lora_opt.rank = 4;
  lora_opt.alpha = 8;
  LoraAdapter lora(model, lora_opt, targets, 0);
  const SafetensorsFile init(argv[2]);
  torch::Tensor tokens;
  {
    torch::NoGradGuard no_grad;
    for (const auto& name : model.WeightNames()) model.Weight(name).copy_(ReadF32(init, name));
    for (const auto& [name, d] : lora.DeltaWeights()) {
      lora.A(name).copy_(ReadF32(init, "lora." + name + ".A"));
      lora.B(name).copy_(ReadF32(init, "lora." + name + ".B"));
    }
    const auto& tv = init.Get("tokens");
    tokens = torch::from_blob(const_cast<uint8_t*>(tv.data), tv.shape, torch::kLong).clone();
  }
  lora.params().EnableGrad();
  FlatAdamW opt(lora.params(), {.lr = 1e-3, .weight_decay = 0.01});
  ForwardOptions fwd;
  fwd.adapter = &lora;
  const auto step = [&] {
    lora.params().ZeroGrad();
    auto loss = model.ForwardNextTokenLoss(tokens, fwd);
    loss.backward();
    opt.Step();
    return loss;
  };

  const double loss0 = step().item<double>();
  for (int i = 1; i < warmup; ++i) step();
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  double mean = 0;
  for (double v : ms) mean += v;
  mean /= static_cast<double>(std::max<size_t>(ms.size(), 1));
  std::sort(ms.begin(), ms.end());
  std::printf(
      "{\"impl\": \"cpp\", \"size\": \"%s\", \"threads\": %d, \"steps\": %d, \"median_ms\": %.4f, "
      "\"mean_ms\": %.4f, \"loss0\": %.9g}\n",
      size.c_str(), at::get_num_threads(), steps, ms.empty() ? 0.0 : ms[ms.size() / 2], mean,
      loss0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lora_step_bench: %s\n", e.what());
    return 1;
  }
}
