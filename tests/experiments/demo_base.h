// The demo base model (the pretrain kind's defaults: the tiny model on the synthetic task),
// pretrained once per test binary build and shared by the tests of that build (each test runs in
// its own process). Published by rename, so parallel tests are safe. LibTorch test binaries only.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "experiments/pretrain/pretrain.h"
#include "tests/experiments/test_context.h"

namespace seedgrid::testing {

inline std::string DemoBase() {
  static const std::string dir = [] {
    struct stat st {};
    ::stat("/proc/self/exe", &st);
    const auto final_dir = std::filesystem::temp_directory_path() /
                           fmt::format("seedgrid-test-base-{}-{}", st.st_mtime, st.st_size);
    if (std::filesystem::exists(final_dir / "model.safetensors")) return final_dir.string();
    TestShardContext ctx(PretrainKindConfig(), Json::object(), 0);
    ctx.set_threads(2);
    RunPretrain(ctx);
    if (ctx.metrics.at("task_accuracy") < 0.95)
      throw std::runtime_error("demo base did not learn the task");
    const auto tmp = final_dir.string() + fmt::format(".tmp-{}", ::getpid());
    std::filesystem::copy(ctx.artifact_dir(), tmp, std::filesystem::copy_options::recursive);
    std::error_code ec;
    std::filesystem::rename(tmp, final_dir, ec);
    if (ec) std::filesystem::remove_all(tmp);  // another process published first
    return final_dir.string();
  }();
  return dir;
}

}  // namespace seedgrid::testing
