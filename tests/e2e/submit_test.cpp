// `seedgrid submit` without Slurm: rendering, validation, and the sbatch/registry side through
// a fake sbatch ($SEEDGRID_SBATCH). The real cluster runs are the e2e scripts next to this file.
#include "coordinator/submit/submit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/process.h"
#include "core/registry.h"
#include "core/types.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

class SubmitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sg-submit-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    spec_ = dir_ / "sweep.yaml";
    Spit(spec_, "name: unit-sweep\nout: " + (dir_ / "runs").string() +
                    "\nkind: chaos\nparams: {sleep_ms: 10}\nseeds: [0, 1, 2, 3]\n");
    // The fake sbatch logs its arguments and answers like `sbatch --parsable` on a
    // multi-cluster site ("id;cluster"), numbering jobs from 100.
    sbatch_log_ = dir_ / "sbatch.log";
    fake_sbatch_ = dir_ / "sbatch";
    Spit(fake_sbatch_, "#!/bin/bash\necho \"$*\" >> " + sbatch_log_.string() +
                           "\necho \"$(( $(wc -l < " + sbatch_log_.string() +
                           ") + 99 ));cluster\"\n");
    fs::permissions(fake_sbatch_, fs::perms(0755));
    setenv("SEEDGRID_SBATCH", fake_sbatch_.c_str(), 1);
    unsetenv("SEEDGRID_SBATCH_TEMPLATE");
  }
  void TearDown() override {
    unsetenv("SEEDGRID_SBATCH");
    fs::remove_all(dir_);
  }

  SubmitOptions Opts() const {
    SubmitOptions o;
    o.spec_path = spec_.string();
    o.nodes = 2;
    o.workers_per_node = 2;
    o.time = "10:00";
    o.seedgrid_binary = "/opt/seedgrid/bin/seedgrid";
    return o;
  }

  fs::path dir_, spec_, sbatch_log_, fake_sbatch_;
};

// `bash -n` on a rendered script: the template plus rendering must stay valid shell.
int BashSyntaxCheck(const fs::path& script) {
  SpawnOptions o;
  o.argv = {"bash", "-n", script.string()};
  return Spawn(o).Wait().code();
}

TEST_F(SubmitTest, RendersOneAllocationForTheWholeSweep) {
  std::string s = RenderSubmitScript(Opts());
  EXPECT_THAT(s, HasSubstr("#SBATCH --nodes=2\n"));
  EXPECT_THAT(s, HasSubstr("#SBATCH --ntasks-per-node=2\n"));
  EXPECT_THAT(s, HasSubstr("#SBATCH --time=10:00\n"));
  EXPECT_THAT(s, HasSubstr("#SBATCH --signal=B:USR1@120\n"));
  EXPECT_THAT(
      s, HasSubstr("#SBATCH --output=" + (dir_ / "runs/unit-sweep/slurm/job-%j.out").string()));
  EXPECT_THAT(s, Not(HasSubstr("--gpus-per-node")));
  EXPECT_THAT(s, HasSubstr("SG_SWEEP=unit-sweep\n"));
  EXPECT_THAT(s, HasSubstr("SG_WORKERS_PER_NODE=2\n"));
  EXPECT_THAT(s, HasSubstr("SG_SIGNAL=USR1\n"));
  // The coordinator command: run SPEC-snapshot --out DIR --registry PATH, absolute paths.
  EXPECT_THAT(s, HasSubstr("SG_CMD=(/opt/seedgrid/bin/seedgrid run " +
                           (dir_ / "runs/unit-sweep/slurm/submit-").string()));
  EXPECT_THAT(s, HasSubstr(".spec.yaml --out " + (dir_ / "runs").string() + " --registry " +
                           (dir_ / "runs/registry.sqlite").string() + ")"));
  EXPECT_THAT(s, HasSubstr("srun --mpi=pmix"));
  EXPECT_THAT(s, HasSubstr("mpirun -n"));
  EXPECT_THAT(s, Not(HasSubstr("@SBATCH")));
  EXPECT_FALSE(fs::exists(dir_ / "runs")) << "rendering must not write anything";

  fs::path f = dir_ / "render.sh";
  Spit(f, s);
  EXPECT_EQ(BashSyntaxCheck(f), 0);
}

TEST_F(SubmitTest, GpuJobsGetOneWorkerPerGpuAndCustomSignal) {
  SubmitOptions o = Opts();
  o.workers_per_node = 0;
  o.gpus_per_node = 4;
  o.cpus_per_gpu = 8;
  o.mem = "200G";
  o.partition = "gpu";
  o.account = "lab-42";
  o.signal = "SIGUSR2@300";
  o.time = "1-00:00:00";
  o.extra_sbatch = {"--qos=high", "--constraint=a100"};
  o.overrides = {"params.sleep_ms=5"};
  std::string s = RenderSubmitScript(o);
  for (const char* line :
       {"--gpus-per-node=4", "--ntasks-per-node=4", "--cpus-per-gpu=8", "--mem=200G",
        "--partition=gpu", "--account=lab-42", "--signal=B:USR2@300", "--time=1-00:00:00",
        "--qos=high", "--constraint=a100"}) {
    EXPECT_THAT(s, HasSubstr(std::string("#SBATCH ") + line + "\n"));
  }
  EXPECT_THAT(s, HasSubstr("SG_GPUS_PER_NODE=4\n"));
  EXPECT_THAT(s, HasSubstr("SG_SIGNAL=USR2\n"));
  EXPECT_THAT(s, HasSubstr(".spec.yaml params.sleep_ms=5 --out "));
}

TEST_F(SubmitTest, ReportsEveryFlagProblemAtOnce) {
  SubmitOptions o = Opts();
  o.time = "";
  o.nodes = 0;
  o.resume_sweep = "a";
  o.rerun_sweep = "b";
  o.mem = "lots";
  o.extra_sbatch = {"qos=high"};
  try {
    RenderSubmitScript(o);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    std::string m = e.what();
    EXPECT_THAT(m, HasSubstr("--time is required"));
    EXPECT_THAT(m, HasSubstr("--nodes must be >= 1"));
    EXPECT_THAT(m, HasSubstr("--resume and --rerun exclude each other"));
    EXPECT_THAT(m, HasSubstr("--mem 'lots'"));
    EXPECT_THAT(m, HasSubstr("--sbatch-arg 'qos=high'"));
  }
}

TEST_F(SubmitTest, RejectsBadTimeAndSignalAfterTheEnd) {
  SubmitOptions o = Opts();
  o.time = "ten minutes";
  EXPECT_THROW(RenderSubmitScript(o), UsageError);
  o.time = "2";  // 120 s
  o.signal = "USR1@120";
  try {
    RenderSubmitScript(o);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("must come before the end of --time 2"));
  }
  o.signal = "KILL@10";
  EXPECT_THROW(RenderSubmitScript(o), UsageError);
  o.signal = "USR1@60";
  EXPECT_NO_THROW(RenderSubmitScript(o));
  o.gpus_per_node = 2;
  o.workers_per_node = 3;
  EXPECT_THROW(RenderSubmitScript(o), UsageError);
}

TEST_F(SubmitTest, InvalidSpecSubmitsNothing) {
  Spit(spec_, "name: bad\nkind: chaos\nparams: {sleep_ms: 10, no_such_param: 1}\nseeds: []\n");
  EXPECT_THROW(RunSubmit(Opts()), SpecError);
  EXPECT_FALSE(fs::exists(sbatch_log_));
  EXPECT_FALSE(fs::exists(dir_ / "runs"));
}

TEST_F(SubmitTest, PrintOnlyTouchesNothing) {
  SubmitOptions o = Opts();
  o.print_only = true;
  testing::internal::CaptureStdout();
  EXPECT_EQ(RunSubmit(o), 0);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("#SBATCH --nodes=2"));
  EXPECT_FALSE(fs::exists(sbatch_log_));
  EXPECT_FALSE(fs::exists(dir_ / "runs"));
}

TEST_F(SubmitTest, ChainQueuesAfteranyFollowUpsAndRecordsEveryJob) {
  SubmitOptions o = Opts();
  o.chain = 2;
  testing::internal::CaptureStdout();
  ASSERT_EQ(RunSubmit(o), 0);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "100\n101\n102\n");

  std::string log = Slurp(sbatch_log_);
  std::istringstream lines(log);
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  EXPECT_THAT(l1, Not(HasSubstr("--dependency")));
  EXPECT_THAT(l1, HasSubstr("--parsable"));
  EXPECT_THAT(l2, HasSubstr("--dependency=afterany:100"));
  EXPECT_THAT(l3, HasSubstr("--dependency=afterany:101"));
  // All three jobs run the same rendered script, written under <out>/<sweep>/slurm/.
  std::string script = l1.substr(l1.rfind(' ') + 1);
  EXPECT_EQ(fs::path(script).parent_path(), dir_ / "runs/unit-sweep/slurm");
  EXPECT_EQ(l2.substr(l2.rfind(' ') + 1), script);
  EXPECT_EQ(BashSyntaxCheck(script), 0);
  // The spec snapshot the job runs is the spec as validated.
  std::string snapshot =
      script.substr(0, script.size() - std::string(".sbatch").size()) + ".spec.yaml";
  EXPECT_EQ(Slurp(snapshot), Slurp(spec_));

  Registry reg((dir_ / "runs/registry.sqlite").string(), Registry::Mode::kReadOnly);
  EXPECT_EQ(reg.Provenance("unit-sweep").at("slurm.job_ids"), "100,101,102");
  auto jobs = reg.SlurmJobs("unit-sweep");
  int n = 0;
  for (const auto& j : jobs) {
    EXPECT_EQ(j.job_id, std::to_string(100 + n));
    EXPECT_EQ(j.chain_index, n);
    EXPECT_EQ(j.depends_on, n == 0 ? "" : std::to_string(99 + n));
    EXPECT_EQ(j.mode, "run");
    EXPECT_EQ(j.nodes, 2);
    EXPECT_EQ(j.workers_per_node, 2);
    EXPECT_EQ(j.log,
              (dir_ / ("runs/unit-sweep/slurm/job-" + std::to_string(100 + n) + ".out")).string());
    ++n;
  }
  EXPECT_EQ(n, 3);

  // A second submission appends its job id.
  o.chain = 0;
  testing::internal::CaptureStdout();
  ASSERT_EQ(RunSubmit(o), 0);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "103\n");
  Registry reg2((dir_ / "runs/registry.sqlite").string(), Registry::Mode::kReadOnly);
  EXPECT_EQ(reg2.Provenance("unit-sweep").at("slurm.job_ids"), "100,101,102,103");
}

TEST_F(SubmitTest, ResumeAndRerunNeedAKnownSweep) {
  SubmitOptions o = Opts();
  o.resume_sweep = "unit-sweep";
  try {
    RunSubmit(o);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("does not exist: nothing to resume"));
  }
  // Make the sweep known, then ask for the wrong name.
  {
    Registry reg((dir_ / "runs/registry.sqlite").string(), Registry::Mode::kWrite);
    SweepRow row;
    row.name = "unit-sweep";
    row.spec_text = Slurp(spec_);
    row.spec_hash = "x";
    row.out_dir = (dir_ / "runs").string();
    row.created = row.updated = "2024-01-01T00:00:00Z";
    row.git_commit = "g";
    row.host = "h";
    reg.UpsertSweep(row);
  }
  o.resume_sweep = "other";
  try {
    RunSubmit(o);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("defines sweep 'unit-sweep'"));
  }
  EXPECT_FALSE(fs::exists(sbatch_log_));

  o.resume_sweep = "unit-sweep";
  testing::internal::CaptureStdout();
  ASSERT_EQ(RunSubmit(o), 0);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "100\n");

  // --rerun needs no spec: the registry knows the sweep and its out dir.
  SubmitOptions r;
  r.rerun_sweep = "unit-sweep";
  r.registry_path = (dir_ / "runs/registry.sqlite").string();
  r.time = "5";
  r.seedgrid_binary = "/opt/seedgrid/bin/seedgrid";
  std::string s = RenderSubmitScript(r);
  EXPECT_THAT(s,
              HasSubstr("SG_CMD=(/opt/seedgrid/bin/seedgrid rerun unit-sweep --failed --registry " +
                        (dir_ / "runs/registry.sqlite").string() + ")"));
  EXPECT_THAT(s, HasSubstr("SG_MODE=rerun"));
  EXPECT_THAT(s, HasSubstr("--rerun unit-sweep"));
  EXPECT_THAT(
      s, HasSubstr("#SBATCH --output=" + (dir_ / "runs/unit-sweep/slurm/job-%j.out").string()));
  r.rerun_sweep = "nope";
  EXPECT_THROW(RenderSubmitScript(r), UsageError);
}

TEST_F(SubmitTest, SbatchFailureIsAnErrorWithItsMessage) {
  Spit(fake_sbatch_, "#!/bin/bash\necho 'sbatch: error: Invalid account' >&2\nexit 1\n");
  try {
    RunSubmit(Opts());
    FAIL() << "expected runtime_error";
  } catch (const UsageError&) {
    FAIL() << "sbatch failing is not a usage error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("Invalid account"));
  }
}

// The registry's writer holds its run lock: a sweep running on the registry makes submit
// refuse before it queues anything (an unrecorded job would be lost to `status`).
TEST_F(SubmitTest, RegistryInUseIsRefusedBeforeQueuing) {
  const std::string registry = (dir_ / "runs/registry.sqlite").string();
  {
    RunLock running(registry);
    try {
      RunSubmit(Opts());
      FAIL() << "expected UsageError";
    } catch (const UsageError& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr("in use"));
    }
    EXPECT_FALSE(fs::exists(sbatch_log_));
  }
  EXPECT_EQ(RunSubmit(Opts()), exit_code::kOk);  // the lock is free again afterwards
  Registry reg(registry, Registry::Mode::kReadOnly);
  EXPECT_EQ(reg.SlurmJobs("unit-sweep").size(), 1u);
}

TEST_F(SubmitTest, TemplateLookupAndEmbeddedCopy) {
  // The embedded copy is the template of this source tree.
  EXPECT_EQ(std::string(EmbeddedSbatchTemplate()),
            Slurp(fs::path(SEEDGRID_SOURCE_DIR) / "slurm/seedgrid.sbatch.in"));
  SubmitOptions o = Opts();
  o.template_path = (dir_ / "t.in").string();
  Spit(o.template_path, "#!/bin/bash\n@SBATCH_DIRECTIVES@\necho @SWEEP@ @MODE@\n");
  std::string s = RenderSubmitScript(o);
  EXPECT_THAT(s, HasSubstr("echo unit-sweep run\n"));
  Spit(o.template_path, "#!/bin/bash\necho @NOT_A_PLACEHOLDER@\n");
  EXPECT_THROW(RenderSubmitScript(o), std::runtime_error);
}

}  // namespace
}  // namespace seedgrid
