// target: dw — variants of a steering dW, their batched evaluation and the runner.
#include "experiments/ablation/ablation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/store.h"
#include "experiments/ablation/ablation_torch.h"
#include "experiments/ablation/layout.h"
#include "experiments/lora_steer/layout.h"
#include "experiments/lora_steer/lora_steer.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;

Tensor F64(const Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64).contiguous(); }

// Stores a float64 tensor as float32 when it has a nonzero element.
void Put(DeltaMap& out, const std::string& name, const Tensor& t64) {
  auto t = t64.to(torch::kFloat32).contiguous();
  if (t.ne(0).any().item<bool>()) out[name] = std::move(t);
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Gaussian with the Frobenius norm of `like`, drawn on the CPU from (seed, control, tensor).
Tensor NormMatchedGaussian(const Tensor& like, uint64_t seed, uint64_t control, uint64_t tensor) {
  const double target = like.norm().item<double>();
  if (target == 0) return torch::zeros_like(like);
  auto gen = at::detail::createCPUGenerator(SplitMix(SplitMix(SplitMix(seed) ^ control) ^ tensor));
  auto r = torch::empty(like.sizes(), torch::kFloat64).normal_(0.0, 1.0, gen);
  return r * (target / r.norm().item<double>());
}

Variant MakeVariant(std::string name, std::string lens, std::string group, std::string kod) {
  Variant v;
  v.name = std::move(name);
  v.lens = std::move(lens);
  v.group = std::move(group);
  v.keep_or_drop = std::move(kod);
  return v;
}

// Thin SVD of one dW tensor and its numerical rank (float32 data: tol = s0·max(out,in)·eps).
struct Svd {
  Tensor u, s, vh;
  int64_t rank = 0;
};
Svd OwnSvd(const Tensor& w) {
  auto [u, s, vh] = at::linalg_svd(w, /*full_matrices=*/false);
  Svd r{u, s, vh, 0};
  const double s0 = s.numel() ? s[0].item<double>() : 0.0;
  const double tol = s0 * static_cast<double>(std::max(w.size(0), w.size(1))) * FLT_EPSILON;
  r.rank = s0 > 0 ? s.gt(tol).sum().item<int64_t>() : 0;
  return r;
}
Tensor Components(const Svd& p, const std::vector<int64_t>& idx) {
  if (idx.empty()) return torch::zeros({p.u.size(0), p.vh.size(1)}, torch::kFloat64);
  const auto i = torch::tensor(idx, torch::kLong);
  return (p.u.index_select(1, i) * p.s.index_select(0, i).unsqueeze(0)).mm(p.vh.index_select(0, i));
}

// Own-SVD crops: which components (of the numerical rank) a crop keeps.
struct Crop {
  const char* group;
  bool random_control;
  std::function<std::vector<int64_t>(const Svd&)> keep;
};
std::vector<int64_t> Range(int64_t b, int64_t e) {
  std::vector<int64_t> v;
  for (int64_t i = b; i < e; ++i) v.push_back(i);
  return v;
}
int64_t QuarterOf(int64_t k) { return (k + 3) / 4; }  // ceil(k/4)
int64_t EnergyCount(const Svd& p, double frac) {
  if (p.rank == 0) return 0;
  const auto e = p.s.narrow(0, 0, p.rank).pow(2).cumsum(0);
  const double total = e[p.rank - 1].item<double>();
  const auto below = e.lt(frac * total * (1 - 1e-12)).sum().item<int64_t>();
  return std::min(p.rank, below + 1);
}
const std::vector<Crop>& Crops() {
  static const std::vector<Crop> kCrops = {
      {"top25_rank", true, [](const Svd& p) { return Range(0, QuarterOf(p.rank)); }},
      {"bottom25_rank", false,
       [](const Svd& p) { return Range(p.rank - QuarterOf(p.rank), p.rank); }},
      {"top50_energy", true, [](const Svd& p) { return Range(0, EnergyCount(p, 0.5)); }},
      {"top90_energy", true, [](const Svd& p) { return Range(0, EnergyCount(p, 0.9)); }},
  };
  return kCrops;
}
std::vector<int64_t> Complement(const std::vector<int64_t>& keep, int64_t n) {
  std::vector<int64_t> out;
  std::set<int64_t> k(keep.begin(), keep.end());
  for (int64_t i = 0; i < n; ++i)
    if (!k.count(i)) out.push_back(i);
  return out;
}

const std::vector<std::pair<std::string, std::vector<ModuleKind>>>& Families() {
  using M = ModuleKind;
  static const std::vector<std::pair<std::string, std::vector<ModuleKind>>> kFamilies = [] {
    std::vector<std::pair<std::string, std::vector<ModuleKind>>> f = {
        {"attention", {M::kQ, M::kK, M::kV, M::kO}},
        {"mlp", {M::kGate, M::kUp, M::kDown}},
        {"residual_write", {M::kO, M::kDown}},
        {"qkv", {M::kQ, M::kK, M::kV}},
    };
    for (ModuleKind m : kAllModuleKinds) f.push_back({std::string(ToString(m)) + "_proj", {m}});
    return f;
  }();
  return kFamilies;
}

// Fills energy_frac, frob_frac and n_tensors against `full64`.
void MeasureFractions(Variant& v, const std::map<std::string, Tensor>& full64) {
  double full2 = 0, dot = 0, own2 = 0;
  for (const auto& [name, f] : full64) full2 += f.pow(2).sum().item<double>();
  for (const auto& [name, d] : v.delta) {
    const auto d64 = F64(d);
    own2 += d64.pow(2).sum().item<double>();
    if (auto it = full64.find(name); it != full64.end())
      dot += (d64 * it->second).sum().item<double>();
  }
  v.n_tensors = static_cast<int64_t>(v.delta.size());
  v.energy_frac = full2 > 0 ? dot / full2 : 0.0;
  v.frob_frac = full2 > 0 ? std::sqrt(own2 / full2) : 0.0;
}

bool SameDelta(const DeltaMap& a, const DeltaMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || !torch::equal(ia->second, ib->second)) return false;
  return true;
}

// Multiplies each cell's rows of a cell-major batch by its own merged weight W + α·delta (see
// ablation_torch.h); groups no cell changes take the plain base GEMM.
class CellAdapter final : public LinearAdapter {
 public:
  CellAdapter(const Model& model, int64_t cells) : model_(model), cells_(cells) {}

  void Add(int64_t cell, const DeltaMap& delta, double alpha) {
    for (const auto& [name, d] : delta) {
      const auto parsed = ParseHfWeightName(name);
      if (!parsed)
        throw std::runtime_error(fmt::format(
            "ablation: dW tensor '{}' is not a linear weight (q/k/v/o/gate/up/down_proj)", name));
      const auto [layer, m] = *parsed;
      const LinearGroup g = Model::GroupOf(m);
      const auto [b, e] = model_.GroupRows(m);
      const Tensor w = model_.GroupWeight(layer, g);
      if (d.dim() != 2 || d.size(0) != e - b || d.size(1) != w.size(1))
        throw std::runtime_error(fmt::format("ablation: dW '{}' is [{}] but the weight is [{}, {}]",
                                             name, fmt::join(d.sizes(), ", "), e - b, w.size(1)));
      auto it = stacks_.find({layer, g});
      if (it == stacks_.end())
        it = stacks_.emplace(std::make_pair(layer, g), w.unsqueeze(0).repeat({cells_, 1, 1})).first;
      it->second[cell].narrow(0, b, e - b).add_(d.to(w.device()), alpha);
    }
  }

  Tensor Linear(int64_t layer, LinearGroup group, const Tensor& x, const Tensor& weight,
                const Tensor& bias, const Tensor& residual) const override {
    const auto it = stacks_.find({layer, group});
    if (it == stacks_.end()) return BaseLinear(x, weight, bias, residual);
    TORCH_CHECK(x.size(0) % cells_ == 0, "ablation: batch of ", x.size(0), " rows is not ", cells_,
                " cells");
    // Per cell, the base model's own op on the merged weight: the same kernels and the same
    // rounding order as lora_steer's WeightEdit evaluation (bit-equal on a bf16 model too).
    const int64_t n = x.size(0) / cells_;
    std::vector<Tensor> ys;
    ys.reserve(static_cast<size_t>(cells_));
    for (int64_t k = 0; k < cells_; ++k)
      ys.push_back(BaseLinear(x.narrow(0, k * n, n), it->second[k], bias,
                              residual.defined() ? residual.narrow(0, k * n, n) : residual));
    return torch::cat(ys);
  }

 private:
  const Model& model_;
  int64_t cells_;
  std::map<std::pair<int64_t, LinearGroup>, Tensor> stacks_;  // W + α·delta [cells, out, in]
};

size_t IndexOf(const std::vector<double>& alphas, double a, const char* what) {
  const auto it = std::find(alphas.begin(), alphas.end(), a);
  if (it == alphas.end())
    throw std::runtime_error(std::string("ablation: alphas must contain ") + what);
  return static_cast<size_t>(it - alphas.begin());
}

size_t VariantIndex(const std::vector<Variant>& variants, const std::string& name) {
  for (size_t i = 0; i < variants.size(); ++i)
    if (variants[i].name == name) return i;
  throw std::runtime_error("ablation: the anchor variant '" + name + "' is missing");
}

}  // namespace

// ---- Variants ------------------------------------------------------------------------------

std::vector<Variant> BuildVariants(const DeltaMap& full, const Model& base,
                                   const VariantOptions& options) {
  torch::NoGradGuard no_grad;
  const std::set<std::string> lenses(options.lenses.begin(), options.lenses.end());
  std::map<std::string, Tensor> full64;
  for (const auto& [name, d] : full) full64[name] = F64(d);
  std::vector<Variant> out;

  // Anchors.
  Variant vf = MakeVariant("full", "anchor", "full", "full");
  for (const auto& [name, f] : full64) Put(vf.delta, name, f);
  out.push_back(std::move(vf));
  out.push_back(MakeVariant("zero", "anchor", "zero", "zero"));
  {
    Variant vr = MakeVariant("random_norm_matched", "anchor", "random_norm_matched", "random");
    uint64_t i = 0;
    for (const auto& [name, f] : full64)
      Put(vr.delta, name, NormMatchedGaussian(f, options.seed, 0, i++));
    out.push_back(std::move(vr));
  }

  // Tensor subsets: keep = the chosen tensors, drop = all the others.
  const auto subset = [&](const std::string& lens, const std::string& group,
                          const std::function<bool(const std::string&)>& chosen) {
    Variant keep = MakeVariant(fmt::format("{}.{}.keep", lens, group), lens, group, "keep");
    Variant drop = MakeVariant(fmt::format("{}.{}.drop", lens, group), lens, group, "drop");
    for (const auto& [name, f] : full64) Put(chosen(name) ? keep.delta : drop.delta, name, f);
    out.push_back(std::move(keep));
    out.push_back(std::move(drop));
  };
  if (lenses.count("module")) {
    for (const auto& [family, modules] : Families())
      subset("module", family, [&](const std::string& name) {
        const auto p = ParseHfWeightName(name);
        return p && std::find(modules.begin(), modules.end(), p->second) != modules.end();
      });
  }
  if (lenses.count("layer")) {
    std::set<int64_t> layers;
    for (const auto& [name, f] : full64)
      if (const auto p = ParseHfWeightName(name)) layers.insert(p->first);
    const size_t width =
        std::to_string(std::max<int64_t>(0, base.config().num_hidden_layers - 1)).size();
    for (int64_t l : layers)
      subset("layer", fmt::format("{:0{}}", l, width), [&](const std::string& name) {
        const auto p = ParseHfWeightName(name);
        return p && p->first == l;
      });
  }

  // SVD crops, per tensor.
  if (lenses.count("svd")) {
    std::map<std::string, Svd> svds;
    for (const auto& [name, f] : full64) svds[name] = OwnSvd(f);
    uint64_t control = 1;
    for (const auto& crop : Crops()) {
      Variant keep = MakeVariant(fmt::format("svd.{}.keep", crop.group), "svd", crop.group, "keep");
      Variant drop = MakeVariant(fmt::format("svd.{}.drop", crop.group), "svd", crop.group, "drop");
      Variant rnd =
          MakeVariant(fmt::format("svd.{}.random", crop.group), "svd", crop.group, "random");
      uint64_t i = 0;
      for (const auto& [name, p] : svds) {
        const auto kept = crop.keep(p);
        const auto k = Components(p, kept);
        Put(keep.delta, name, k);
        Put(drop.delta, name, Components(p, Complement(kept, p.s.size(0))));
        if (crop.random_control)
          Put(rnd.delta, name, NormMatchedGaussian(k, options.seed, control, i));
        ++i;
      }
      out.push_back(std::move(keep));
      out.push_back(std::move(drop));
      if (crop.random_control) out.push_back(std::move(rnd));
      ++control;
    }
  }
  if (lenses.count("base_svd")) {
    Variant keep = MakeVariant("base_svd.top25.keep", "base_svd", "top25", "keep");
    Variant drop = MakeVariant("base_svd.top25.drop", "base_svd", "top25", "drop");
    Variant rnd = MakeVariant("base_svd.top25.random", "base_svd", "top25", "random");
    uint64_t i = 0;
    for (const auto& [name, f] : full64) {
      if (!base.HasWeight(name))
        throw std::runtime_error("ablation: dW tensor '" + name + "' has no base weight");
      const Tensor w0 = F64(base.Weight(name));
      if (w0.sizes() != f.sizes())
        throw std::runtime_error(
            fmt::format("ablation: dW '{}' is [{}] but the base weight is [{}]", name,
                        fmt::join(f.sizes(), ", "), fmt::join(w0.sizes(), ", ")));
      // dS = U0ᵀ·dW·V0 in the base weight's full singular bases; keep its top-25% block.
      auto [u0, s0, v0h] = at::linalg_svd(w0, /*full_matrices=*/true);
      const Tensor ds = u0.t().mm(f).mm(v0h.t());
      const int64_t n0 = QuarterOf(std::min(f.size(0), f.size(1)));
      Tensor mask = torch::zeros_like(ds);
      mask.narrow(0, 0, n0).narrow(1, 0, n0).fill_(1.0);
      const Tensor k = u0.mm(ds * mask).mm(v0h);
      Put(keep.delta, name, k);
      Put(drop.delta, name, u0.mm(ds * (1.0 - mask)).mm(v0h));
      Put(rnd.delta, name, NormMatchedGaussian(k, options.seed, 100, i++));
    }
    out.push_back(std::move(keep));
    out.push_back(std::move(drop));
    out.push_back(std::move(rnd));
  }

  for (auto& v : out) MeasureFractions(v, full64);
  MeasureReconstruction(out, full);
  return out;
}

void MeasureReconstruction(std::vector<Variant>& variants, const DeltaMap& full) {
  torch::NoGradGuard no_grad;
  double global2 = 0;
  for (const auto& [name, f] : full) global2 += F64(f).pow(2).sum().item<double>();
  const double global = global2 > 0 ? std::sqrt(global2) : 1.0;
  const auto get = [](const DeltaMap& m, const std::string& name, const Tensor& like) {
    const auto it = m.find(name);
    return it == m.end() ? torch::zeros(like.sizes(), torch::kFloat64) : F64(it->second);
  };
  for (auto& v : variants) v.recon_err = NAN;
  for (auto& keep : variants) {
    if (keep.keep_or_drop != "keep") continue;
    for (auto& drop : variants) {
      if (drop.keep_or_drop != "drop" || drop.lens != keep.lens || drop.group != keep.group)
        continue;
      std::set<std::string> names;
      for (const DeltaMap* m :
           std::initializer_list<const DeltaMap*>{&full, &keep.delta, &drop.delta})
        for (const auto& [name, t] : *m) names.insert(name);
      double worst = 0;
      for (const auto& name : names) {
        const Tensor& like = full.count(name)         ? full.at(name)
                             : keep.delta.count(name) ? keep.delta.at(name)
                                                      : drop.delta.at(name);
        const Tensor f = get(full, name, like);
        const double fn = f.norm().item<double>();
        const double err =
            (get(keep.delta, name, like) + get(drop.delta, name, like) - f).norm().item<double>();
        worst = std::max(worst, err / (fn > 0 ? fn : global));
      }
      keep.recon_err = drop.recon_err = worst;
    }
  }
}

std::vector<std::string> ReconstructionProblems(const std::vector<Variant>& variants,
                                                double tolerance) {
  std::vector<std::string> problems;
  for (const auto& v : variants) {
    if (v.keep_or_drop != "keep") continue;
    if (!(v.recon_err <= tolerance))
      problems.push_back(fmt::format("{} + its drop: relative reconstruction error {} > {}", v.name,
                                     v.recon_err, tolerance));
  }
  return problems;
}

// ---- Evaluation ----------------------------------------------------------------------------

EvalResult EvaluateVariants(const Model& model, const synth::RowBatch& rows,
                            const std::vector<Variant>& variants, const EvalOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& alphas = o.alphas;
  const size_t i0 = IndexOf(alphas, 0.0, "0"), i1 = IndexOf(alphas, 1.0, "1");
  const size_t vfull = VariantIndex(variants, "full"), vzero = VariantIndex(variants, "zero");
  const int64_t A = static_cast<int64_t>(alphas.size()), R = rows.rows, T = rows.seq_len;
  if (R < 1) throw std::runtime_error("ablation: no evaluation rows");

  // Which rows each variant takes: the base model's (no tensor), full's (equal to full), its own.
  enum class Source { kBase, kFull, kOwn };
  std::vector<Source> source(variants.size(), Source::kOwn);
  for (size_t v = 0; v < variants.size(); ++v) {
    if (variants[v].delta.empty())
      source[v] = Source::kBase;
    else if (v != vfull && SameDelta(variants[v].delta, variants[vfull].delta))
      source[v] = Source::kFull;
  }
  std::vector<std::pair<size_t, size_t>> cells;  // (variant, alpha index)
  for (size_t v = 0; v < variants.size(); ++v)
    if (source[v] == Source::kOwn)
      for (size_t a = 0; a < alphas.size(); ++a)
        if (alphas[a] != 0.0) cells.emplace_back(v, a);

  const int64_t row_chunk = std::min(R, std::max<int64_t>(1, o.batch_rows));
  const int64_t cell_chunk =
      std::clamp<int64_t>(o.batch_rows / row_chunk, 1, std::max<int64_t>(1, o.batch_cells));
  const int64_t n_cells = static_cast<int64_t>(cells.size());
  const int64_t row_chunks = (R + row_chunk - 1) / row_chunk;
  const int64_t total = row_chunks + (n_cells + cell_chunk - 1) / cell_chunk * row_chunks;
  int64_t done = 0;
  const auto tick = [&] {
    ++done;
    if (o.progress) o.progress(done, total);
  };

  EvalResult result;
  const auto base = ScoreYesNo(model, rows, {}, row_chunk, o.query);
  for (int64_t i = 0; i < row_chunks; ++i) tick();
  std::map<std::pair<size_t, size_t>, YesNoScores> scored;
  for (int64_t c0 = 0; c0 < n_cells; c0 += cell_chunk) {
    const int64_t cn = std::min(cell_chunk, n_cells - c0);
    CellAdapter adapter(model, cn);
    for (int64_t k = 0; k < cn; ++k) {
      const auto [v, a] = cells[static_cast<size_t>(c0 + k)];
      adapter.Add(k, variants[v].delta, alphas[a]);
      scored[{v, a}] = {torch::empty({R}, torch::kFloat32), torch::empty({R}, torch::kFloat32)};
    }
    ForwardOptions fo;
    fo.adapter = &adapter;
    for (int64_t r0 = 0; r0 < R; r0 += row_chunk) {
      const int64_t n = std::min(row_chunk, R - r0);
      synth::RowBatch stacked;  // cn copies of rows [r0, r0+n), cell-major
      stacked.rows = cn * n;
      stacked.seq_len = T;
      YesNoQuery stacked_query;  // the rows' positions, once per cell
      for (int64_t k = 0; k < cn; ++k) {
        stacked.tokens.insert(stacked.tokens.end(), rows.row(r0), rows.row(r0 + n));
        if (o.query)
          stacked_query.position.insert(stacked_query.position.end(),
                                        o.query->position.begin() + r0,
                                        o.query->position.begin() + r0 + n);
      }
      if (o.query) {
        stacked_query.yes = o.query->yes;
        stacked_query.no = o.query->no;
      }
      const auto s =
          ScoreYesNo(model, stacked, fo, stacked.rows, o.query ? &stacked_query : nullptr);
      for (int64_t k = 0; k < cn; ++k) {
        auto& dst = scored[cells[static_cast<size_t>(c0 + k)]];
        dst.logratio.narrow(0, r0, n).copy_(s.logratio.narrow(0, k * n, n));
        dst.pmass.narrow(0, r0, n).copy_(s.pmass.narrow(0, k * n, n));
      }
      ++result.forwards;
      tick();
    }
  }
  result.cells_evaluated = n_cells;
  result.forwards += row_chunks;

  const auto label =
      torch::tensor(std::vector<float>(rows.label.begin(), rows.label.end()), torch::kFloat32)
          .to(torch::kFloat64);
  for (size_t v = 0; v < variants.size(); ++v) {
    VariantScores vs;
    vs.logratio = torch::empty({A, R}, torch::kFloat32);
    vs.pmass = torch::empty({A, R}, torch::kFloat32);
    for (size_t a = 0; a < alphas.size(); ++a) {
      const YesNoScores* s = &base;
      if (alphas[a] != 0.0 && source[v] != Source::kBase)
        s = &scored.at({source[v] == Source::kFull ? vfull : v, a});
      vs.logratio[static_cast<int64_t>(a)].copy_(s->logratio);
      vs.pmass[static_cast<int64_t>(a)].copy_(s->pmass);
    }
    const auto signed_mean = [&](size_t a) {
      return (vs.logratio[static_cast<int64_t>(a)].to(torch::kFloat64) * label)
          .mean()
          .item<double>();
    };
    vs.steer_delta = signed_mean(i1) - signed_mean(i0);
    result.variants.push_back(std::move(vs));
  }
  const double m_full = result.variants[vfull].steer_delta,
               m_zero = result.variants[vzero].steer_delta;
  for (auto& vs : result.variants)
    vs.retained = m_full != m_zero ? (vs.steer_delta - m_zero) / (m_full - m_zero) : NAN;
  return result;
}

// ---- Runner --------------------------------------------------------------------------------

namespace {

const InputArtifact& SteerInput(const ShardTaskView& task) {
  std::vector<const InputArtifact*> found;
  std::vector<std::string> kinds;
  for (const auto& in : task.inputs) {
    kinds.push_back(fmt::format("{} ({})", in.key.stage(), in.key.kind()));
    if (in.key.kind() == "lora_steer") found.push_back(&in);
  }
  if (found.size() != 1)
    throw std::runtime_error(fmt::format(
        "ablation (target dw): needs exactly one lora_steer shard (`needs: <steer stage>` or "
        "`needs: [<steer stage>, <pretrain stage>]`), got {} among the inputs [{}]",
        found.size(), fmt::join(kinds, ", ")));
  return *found.front();
}

// The held-out synthetic rows lora_steer scores (split kSteerEval): `rows` of them, 0 = the
// steer shard's data.n_eval.
synth::RowBatch SyntheticEvalRows(const InputArtifact& steer, const Model& model,
                                  const std::string& base_dir, const Json& p) {
  const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
  CheckTaskFits(task, model, base_dir);
  int64_t n_rows = p.at("rows").get<int64_t>();
  if (n_rows == 0) {
    const Json* n = nullptr;
    if (steer.key.params().contains("data") && steer.key.params()["data"].contains("n_eval"))
      n = &steer.key.params()["data"]["n_eval"];
    if (n)
      n_rows = n->get<int64_t>();
    else
      n_rows = H5Reader(steer.path).DatasetShape(lora_steer_layout::kEvalRowIdx).at(0);
  }
  return synth::MakeSteerRows(task, synth::Split::kSteerEval, 0, n_rows, synth::Persona::kPos);
}

void RunDwAblation(ShardContext& ctx) {
  const Json& p = ctx.params();
  const InputArtifact& steer = SteerInput(ctx.task());
  const std::string base_dir = ResolveAblationBase(ctx.task(), p.at("base").get<std::string>());
  // model.dtype: the base's compute dtype; variants, deltas and scores stay float32.
  Model model = Model::Load(base_dir, torch::Device(ctx.device()), AblationDtype(p));
  const DeltaMap dw = ReadSteeringDelta(steer.path, &model);
  // A text steer shard's own eval rows, or the synthetic rows it scored.
  auto text_rows = ReadTextEvalSet(steer.path);
  const synth::RowBatch rows =
      text_rows ? text_rows->first : SyntheticEvalRows(steer, model, base_dir, p);

  VariantOptions vo;
  vo.lenses = p.at("lenses").get<std::vector<std::string>>();
  vo.seed = static_cast<uint64_t>(ctx.seed());
  const std::vector<Variant> variants = BuildVariants(dw, model, vo);
  if (const auto problems = ReconstructionProblems(variants); !problems.empty())
    throw std::runtime_error(fmt::format("ablation: keep + drop != full for {} pair(s):\n  {}",
                                         problems.size(), fmt::join(problems, "\n  ")));

  EvalOptions eo;
  eo.alphas = p.at("alphas").get<std::vector<double>>();
  eo.batch_rows = p.at("batch").at("rows").get<int64_t>();
  eo.batch_cells = p.at("batch").at("cells").get<int64_t>();
  eo.progress = [&](int64_t done, int64_t total) { ctx.Progress(done, total); };
  eo.query = text_rows ? &text_rows->second : nullptr;
  const EvalResult res = EvaluateVariants(model, rows, variants, eo);

  // Comparability with the steer shard: its own α = 0 and α = 1 rows against ours.
  double vs_steer = NAN;
  {
    H5Reader r(steer.path);
    namespace S = lora_steer_layout;
    if (r.Has(S::kEvalLogratio) && r.Has(S::kEvalAlphas) && r.Has(S::kEvalRowIdx) &&
        r.Read<int64_t>(S::kEvalRowIdx) == rows.index) {
      const auto s_alphas = r.Read<double>(S::kEvalAlphas);
      const auto s_lr = r.Read<float>(S::kEvalLogratio);
      const auto& full = res.variants[VariantIndex(variants, "full")];
      const auto ours = full.logratio.contiguous();
      vs_steer = 0;
      for (double a : {0.0, 1.0}) {
        const size_t is = IndexOf(s_alphas, a, "0 and 1 in the steer shard");
        const size_t io = IndexOf(eo.alphas, a, "0 and 1");
        const float* mine = ours.data_ptr<float>() + io * static_cast<size_t>(rows.rows);
        const float* theirs = s_lr.data() + is * static_cast<size_t>(rows.rows);
        for (int64_t i = 0; i < rows.rows; ++i)
          vs_steer = std::max<double>(vs_steer, std::abs(mine[i] - theirs[i]));
      }
    }
  }

  H5Writer& out = ctx.out();
  const int64_t A = static_cast<int64_t>(eo.alphas.size()), R = rows.rows;
  out.Write(ablation_layout::kAlphas, eo.alphas);
  out.Write(ablation_layout::kEvalRowIdx, rows.index);
  out.Write(ablation_layout::kEvalLabel,
            std::vector<int64_t>(rows.label.begin(), rows.label.end()));
  std::vector<std::string> names, lens, group, kod;
  std::vector<double> energy, frob, recon, delta, retained;
  std::vector<int64_t> n_tensors;
  double recon_max = 0, fro2 = 0;
  for (size_t v = 0; v < variants.size(); ++v) {
    const Variant& var = variants[v];
    const VariantScores& s = res.variants[v];
    out.Write(ablation_layout::kVariants + var.name + "/logratio", s.logratio.data_ptr<float>(),
              Shape{A, R});
    out.Write(ablation_layout::kVariants + var.name + "/pmass", s.pmass.data_ptr<float>(),
              Shape{A, R});
    names.push_back(var.name);
    lens.push_back(var.lens);
    group.push_back(var.group);
    kod.push_back(var.keep_or_drop);
    energy.push_back(var.energy_frac);
    frob.push_back(var.frob_frac);
    n_tensors.push_back(var.n_tensors);
    recon.push_back(var.recon_err);
    delta.push_back(s.steer_delta);
    retained.push_back(s.retained);
    if (std::isfinite(var.recon_err)) recon_max = std::max(recon_max, var.recon_err);
    ctx.Metric(ablation_layout::kSteerDeltaOf + var.name, s.steer_delta);
    if (std::isfinite(s.retained)) ctx.Metric(ablation_layout::kRetained + var.name, s.retained);
  }
  for (const auto& [name, d] : dw) fro2 += F64(d).pow(2).sum().item<double>();
  out.WriteStrings(ablation_layout::kManifestVariant, names);
  out.WriteStrings("manifest/lens", lens);
  out.WriteStrings("manifest/group", group);
  out.WriteStrings("manifest/keep_or_drop", kod);
  out.Write("manifest/energy_frac", energy);
  out.Write("manifest/frob_frac", frob);
  out.Write("manifest/n_tensors", n_tensors);
  out.Write("manifest/recon_err", recon);
  out.Write("manifest/steer_delta", delta);
  out.Write(ablation_layout::kManifestRetained, retained);
  out.Attr("/", "target", std::string("dw"));
  out.Attr("/", "base_checkpoint", fs::absolute(base_dir).string());
  out.Attr("/", "model_dtype", std::string(ComputeDtypeName(model.dtype())));
  out.Attr("/", "steer_shard", steer.key.id().str());
  out.Attr("/", "steer_file", steer.path);
  out.Attr("/", "alpha_meaning",
           std::string("weights = W + alpha * delta(variant), delta(full) = dW"));
  out.Attr("/", "retained_definition",
           std::string("(m(variant) - m(zero)) / (m(full) - m(zero)), m = mean(label*logratio | "
                       "alpha=1) - mean(label*logratio | alpha=0)"));

  ctx.Metric("n_variants", static_cast<double>(variants.size()));
  ctx.Metric("cells_evaluated", static_cast<double>(res.cells_evaluated));
  ctx.Metric("recon_err_max", recon_max);
  ctx.Metric("dw_fro", std::sqrt(fro2));
  if (std::isfinite(vs_steer)) ctx.Metric("full_vs_steer_max_abs", vs_steer);
}

}  // namespace

std::string ResolveAblationBase(const ShardTaskView& task, const std::string& explicit_dir) {
  const bool has_pretrain =
      std::any_of(task.inputs.begin(), task.inputs.end(),
                  [](const InputArtifact& in) { return in.key.kind() == "pretrain"; });
  if (!explicit_dir.empty() || has_pretrain) return ResolveBaseCheckpoint(task, explicit_dir);
  for (const auto& in : task.inputs) {
    if (in.key.kind() != "lora_steer") continue;
    const auto dir = H5Reader(in.path).AttrString("/", "base_checkpoint");
    if (dir && fs::exists(fs::path(*dir) / "config.json")) return *dir;
    throw std::runtime_error(fmt::format(
        "ablation: no base checkpoint: params.base is empty, no pretrain shard is needed and {}'s "
        "base_checkpoint attribute {}",
        in.path, dir ? "'" + *dir + "' has no config.json" : "is missing"));
  }
  return ResolveBaseCheckpoint(task, explicit_dir);  // throws, saying what it looked at
}

torch::ScalarType AblationDtype(const Json& params) {
  return ParseComputeDtype(params.at("model").at("dtype").get<std::string>());
}

void CheckTaskFits(const synth::TaskSpec& task, const Model& model, const std::string& dir) {
  if (task.vocab_size != model.config().vocab_size ||
      task.seq_len > model.config().max_position_embeddings)
    throw std::runtime_error(fmt::format(
        "base {}: task (vocab {}, seq_len {}) does not fit the model (vocab {}, context {})", dir,
        task.vocab_size, task.seq_len, model.config().vocab_size,
        model.config().max_position_embeddings));
}

void RunAblation(ShardContext& ctx) {
  at::set_num_threads(std::max(1, ctx.threads()));
  const auto target = ctx.params().at("target").get<std::string>();
  if (target == "dw") return RunDwAblation(ctx);
  if (target == "heads") return RunHeadAblation(ctx);
  throw std::runtime_error("ablation: target '" + target + "' is not dw or heads");
}

void RegisterAblationRunners(RunnerRegistry& runners) { runners.Add("ablation", RunAblation); }

}  // namespace seedgrid
