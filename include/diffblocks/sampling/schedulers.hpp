#pragma once
// diffusers 0.25.1 schedulers for the Diffuser U-Net: DDPMScheduler, DDIMScheduler (eta 0) and
// EulerDiscreteScheduler, epsilon prediction, matching diffusers step for step. The noise
// schedule is built in float32 as diffusers does (torch.linspace, cumprod accumulated in
// double like torch's CPU kernel), so timesteps and coefficients agree to the last bits.
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/core/config.hpp"
#include "diffblocks/core/params.hpp"
#include "diffblocks/core/random.hpp"
#include "diffblocks/ops/ops.hpp"
#include "diffblocks/sampling/scheduler_ops.hpp"

namespace diffblocks {

/// Settings shared by the three schedulers (diffusers' config names and defaults).
struct SchedulerConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.0001, beta_end = 0.02;
  std::string beta_schedule = "linear";  // "linear", "scaled_linear", "squaredcos_cap_v2"
  std::string prediction_type = "epsilon";
  std::string timestep_spacing;  // "leading" (DDPM/DDIM default), "linspace" (Euler default), "trailing"
  int steps_offset = 0;
  bool clip_sample = true;  // DDPM/DDIM
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;       // DDIM
  std::string variance_type = "fixed_small";  // DDPM

  /// Reads a diffusers scheduler_config.json; unsupported options are rejected by name, and so
  /// are unknown keys (a typo must not silently fall back to a default). Known are the config
  /// keys of diffusers 0.25.1's DDPM, DDIM and Euler schedulers (their configs are
  /// interchangeable there) and keys starting with '_' (_class_name, _diffusers_version).
  static SchedulerConfig from_json(const nlohmann::json& j, const std::string& kind, const std::string& origin) {
    static const std::set<std::string> known{
        "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "variance_type",
        "clip_sample", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "clip_sample_range",
        "sample_max_value", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr", "set_alpha_to_one",
        "interpolation_type", "use_karras_sigmas", "sigma_min", "sigma_max", "timestep_type"};
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!it.key().empty() && it.key()[0] != '_' && !known.count(it.key()))
        throw ConfigError(origin + ": unknown scheduler key '" + it.key() + "'");
    SchedulerConfig c;
    c.timestep_spacing = kind == "euler" ? "linspace" : "leading";
    auto str = [&](const char* key, const std::string& fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      if (!j[key].is_string()) throw ConfigError(origin + ": scheduler key '" + key + "' must be a string");
      return j[key].get<std::string>();
    };
    auto boolean = [&](const char* key, bool fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      if (!j[key].is_boolean()) throw ConfigError(origin + ": scheduler key '" + key + "' must be true or false");
      return j[key].get<bool>();
    };
    auto must_be = [&](const char* key, const nlohmann::json& supported) {
      if (j.contains(key) && !(j[key] == supported) && !(supported.is_null() && j[key].is_null()))
        throw ConfigError(origin + ": scheduler key '" + key + "' = " + json_brief(j[key]) +
                          " is not supported (supported: " + json_brief(supported) + ")");
    };
    c.num_train_timesteps = static_cast<int>(config::get_int(j, "num_train_timesteps", 1000, origin));
    c.beta_start = config::get_double(j, "beta_start", 0.0001, origin);
    c.beta_end = config::get_double(j, "beta_end", 0.02, origin);
    c.beta_schedule = str("beta_schedule", "linear");
    c.prediction_type = str("prediction_type", "epsilon");
    c.timestep_spacing = str("timestep_spacing", c.timestep_spacing);
    c.steps_offset = static_cast<int>(config::get_int(j, "steps_offset", 0, origin));
    c.clip_sample = boolean("clip_sample", true);
    c.clip_sample_range = config::get_double(j, "clip_sample_range", 1.0, origin);
    c.set_alpha_to_one = boolean("set_alpha_to_one", true);
    c.variance_type = str("variance_type", "fixed_small");
    must_be("trained_betas", nullptr);
    must_be("thresholding", false);
    must_be("rescale_betas_zero_snr", false);
    must_be("use_karras_sigmas", false);
    must_be("interpolation_type", "linear");
    must_be("timestep_type", "discrete");
    must_be("sigma_min", nullptr);
    must_be("sigma_max", nullptr);
    c.validate(origin);
    return c;
  }

  void validate(const std::string& origin) const {
    auto fail = [&](const std::string& key, const std::string& why) {
      throw ConfigError(origin + ": scheduler key '" + key + "' " + why);
    };
    if (num_train_timesteps < 2 || num_train_timesteps > 1000000)
      fail("num_train_timesteps", "must be in [2, 1000000], got " + std::to_string(num_train_timesteps));
    if (beta_schedule != "squaredcos_cap_v2" && !(beta_start >= 0 && beta_start <= beta_end && beta_end < 1))
      fail("beta_end", "and beta_start must satisfy 0 <= beta_start <= beta_end < 1");
    if (steps_offset < 0 || steps_offset >= num_train_timesteps)
      fail("steps_offset", "must be in [0, num_train_timesteps), got " + std::to_string(steps_offset));
    if (clip_sample && !(clip_sample_range > 0)) fail("clip_sample_range", "must be positive");
    if (beta_schedule != "linear" && beta_schedule != "scaled_linear" && beta_schedule != "squaredcos_cap_v2")
      fail("beta_schedule", "\"" + beta_schedule + "\" is not supported");
    if (prediction_type != "epsilon") fail("prediction_type", "\"" + prediction_type + "\" is not supported (supported: \"epsilon\")");
    if (timestep_spacing != "leading" && timestep_spacing != "linspace" && timestep_spacing != "trailing")
      fail("timestep_spacing", "\"" + timestep_spacing + "\" is not supported");
    if (variance_type != "fixed_small") fail("variance_type", "\"" + variance_type + "\" is not supported (supported: \"fixed_small\")");
  }

  /// float32 betas exactly as diffusers builds them.
  std::vector<float> betas() const {
    const int n = num_train_timesteps;
    std::vector<float> b(static_cast<std::size_t>(n));
    if (beta_schedule == "squaredcos_cap_v2") {
      auto alpha_bar = [](double t) { const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2); return c * c; };
      for (int i = 0; i < n; ++i)
        b[i] = static_cast<float>(std::min(1 - alpha_bar((i + 1.0) / n) / alpha_bar(double(i) / n), 0.999));
      return b;
    }
    const bool sq = beta_schedule == "scaled_linear";
    const float start = static_cast<float>(sq ? std::sqrt(beta_start) : beta_start);
    const float end = static_cast<float>(sq ? std::sqrt(beta_end) : beta_end);
    const float step = (end - start) / static_cast<float>(n - 1);  // torch.linspace's float32 kernel
    for (int i = 0; i < n; ++i) {
      const float v = i < n / 2 ? start + step * static_cast<float>(i) : end - step * static_cast<float>(n - 1 - i);
      b[i] = sq ? v * v : v;
    }
    return b;
  }

  /// alphas_cumprod (float32 values of a double-accumulated product, as torch.cumprod on CPU).
  std::vector<float> alphas_cumprod() const {
    const auto b = betas();
    std::vector<float> a(b.size());
    double acc = 1.0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      acc *= static_cast<double>(1.0f - b[i]);
      a[i] = static_cast<float>(acc);
    }
    return a;
  }

  /// Integer timesteps for DDPM/DDIM ("leading"/"trailing"/"linspace" spacing).
  std::vector<std::int64_t> integer_timesteps(int n) const {
    if (n <= 0 || n > num_train_timesteps)
      throw InputError("scheduler: num_inference_steps must be in [1, " + std::to_string(num_train_timesteps) +
                       "], got " + std::to_string(n));
    std::vector<std::int64_t> t;
    if (timestep_spacing == "leading") {
      const int ratio = num_train_timesteps / n;
      for (int i = n - 1; i >= 0; --i) t.push_back(static_cast<std::int64_t>(i) * ratio + steps_offset);
    } else if (timestep_spacing == "trailing") {
      const double ratio = double(num_train_timesteps) / n;
      for (double v = num_train_timesteps; v > 0; v -= ratio) t.push_back(static_cast<std::int64_t>(std::nearbyint(v)) - 1);
    } else {
      for (int i = n - 1; i >= 0; --i)
        t.push_back(static_cast<std::int64_t>(std::nearbyint(double(num_train_timesteps - 1) * i / (n - 1 > 0 ? n - 1 : 1))));
    }
    return t;
  }
};

/// The interface the sampling loop uses; `timesteps()` are what the model is called with.
template <class T = float, class D = Cpu>
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual void set_timesteps(int num_inference_steps) = 0;
  virtual const std::vector<double>& timesteps() const = 0;
  virtual T init_noise_sigma() const { return T(1); }
  virtual Tensor<T, 4, D> scale_model_input(const Tensor<T, 4, D>& sample, double /*t*/) { return sample; }
  /// One reverse step at timestep t. `noise` is used by stochastic schedulers (DDPM); when it is
  /// empty they draw it from `rng`.
  virtual Tensor<T, 4, D> step(const Tensor<T, 4, D>& model_output, double t, const Tensor<T, 4, D>& sample, Rng& rng,
                               const Tensor<T, 4, D>* noise = nullptr) = 0;

 protected:
  /// model_output, sample (and noise) must have one shape: no silent broadcasting.
  static void check_shapes(const char* who, const Tensor<T, 4, D>& model_output, const Tensor<T, 4, D>& sample,
                           const Tensor<T, 4, D>* noise) {
    if (tensor_shape(model_output) != tensor_shape(sample))
      throw InputError(std::string(who) + ": model_output " + shape_str(tensor_shape(model_output)) +
                       " and sample " + shape_str(tensor_shape(sample)) + " differ");
    if (noise && tensor_shape(*noise) != tensor_shape(sample))
      throw InputError(std::string(who) + ": noise " + shape_str(tensor_shape(*noise)) + " and sample " +
                       shape_str(tensor_shape(sample)) + " differ");
  }
};

/// DDPM and DDIM: integer timesteps over alphas_cumprod; the previous timestep is
/// t - num_train_timesteps / num_inference_steps.
template <class T, class D>
class AlphasCumprodScheduler : public Scheduler<T, D> {
 public:
  void set_timesteps(int n) override {
    n_ = n;
    steps_.clear();
    for (auto t : cfg_.integer_timesteps(n)) steps_.push_back(double(t));
  }
  const std::vector<double>& timesteps() const override { return steps_; }

 protected:
  AlphasCumprodScheduler(const SchedulerConfig& c, const char* name) : cfg_(c), ac_(c.alphas_cumprod()), name_(name) {}

  /// (t, previous t) for a timestep the model was called with; throws on non-schedule values.
  std::pair<std::int64_t, std::int64_t> t_and_prev(double td) const {
    if (n_ <= 0) throw InputError(std::string(name_) + ": call set_timesteps() before step()");
    const auto t = static_cast<std::int64_t>(td);
    if (t < 0 || t >= cfg_.num_train_timesteps || double(t) != td)
      throw InputError(std::string(name_) + ": timestep " + std::to_string(td) + " is not an integer in [0, " +
                       std::to_string(cfg_.num_train_timesteps) + ")");
    return {t, t - cfg_.num_train_timesteps / n_};
  }

  SchedulerConfig cfg_;
  std::vector<float> ac_;
  std::vector<double> steps_;
  int n_ = 0;
  const char* name_;
};

template <class T = float, class D = Cpu>
class DDPMScheduler : public AlphasCumprodScheduler<T, D> {
 public:
  explicit DDPMScheduler(const SchedulerConfig& c = SchedulerConfig::from_json({}, "ddpm", "DDPMScheduler"))
      : AlphasCumprodScheduler<T, D>(c, "DDPMScheduler") {}

  Tensor<T, 4, D> step(const Tensor<T, 4, D>& eps, double td, const Tensor<T, 4, D>& sample, Rng& rng,
                       const Tensor<T, 4, D>* noise = nullptr) override {
    this->check_shapes("DDPMScheduler", eps, sample, noise);
    const auto [t, prev] = this->t_and_prev(td);
    const auto& ac = this->ac_;
    const auto& cfg = this->cfg_;
    const T a_t = ac[t], a_prev = prev >= 0 ? ac[prev] : T(1);
    const T b_t = T(1) - a_t, b_prev = T(1) - a_prev;
    const T cur_alpha = a_t / a_prev, cur_beta = T(1) - cur_alpha;
    const T c_x0 = (std::pow(a_prev, T(0.5)) * cur_beta) / b_t;
    const T c_s = std::pow(cur_alpha, T(0.5)) * b_prev / b_t;
    Tensor<T, 4, D> drawn = ops::zeros<T, 4>(D{}, {0, 0, 0, 0});
    T c_noise = 0;
    if (t > 0) {
      const T var = std::max(b_prev / b_t * cur_beta, T(1e-20));
      c_noise = std::pow(var, T(0.5));
      if (!noise) {
        drawn = ops::empty<T, 4>(D{}, {sample.shape(0), sample.shape(1), sample.shape(2), sample.shape(3)});
        ops::randn_(D{}, drawn, rng);
        noise = &drawn;
      }
    } else {
      noise = &drawn;
    }
    return ops::epsilon_step(D{}, eps, sample, *noise, std::pow(a_t, T(0.5)), std::pow(b_t, T(0.5)),
                             cfg.clip_sample ? T(cfg.clip_sample_range) : T(0), c_x0, c_s, T(0), c_noise);
  }
};

template <class T = float, class D = Cpu>
class DDIMScheduler : public AlphasCumprodScheduler<T, D> {
 public:
  explicit DDIMScheduler(const SchedulerConfig& c = SchedulerConfig::from_json({}, "ddim", "DDIMScheduler"))
      : AlphasCumprodScheduler<T, D>(c, "DDIMScheduler") {}

  /// eta = 0: deterministic; rng and noise are unused.
  Tensor<T, 4, D> step(const Tensor<T, 4, D>& eps, double td, const Tensor<T, 4, D>& sample, Rng&,
                       const Tensor<T, 4, D>* = nullptr) override {
    this->check_shapes("DDIMScheduler", eps, sample, nullptr);
    const auto [t, prev] = this->t_and_prev(td);
    const auto& ac = this->ac_;
    const auto& cfg = this->cfg_;
    const T a_t = ac[t];
    const T a_prev = prev >= 0 ? ac[prev] : (cfg.set_alpha_to_one ? T(1) : ac[0]);
    const T b_t = T(1) - a_t;
    const Tensor<T, 4, D> none = ops::zeros<T, 4>(D{}, {0, 0, 0, 0});
    return ops::epsilon_step(D{}, eps, sample, none, std::pow(a_t, T(0.5)), std::pow(b_t, T(0.5)),
                             cfg.clip_sample ? T(cfg.clip_sample_range) : T(0), std::pow(a_prev, T(0.5)), T(0),
                             std::pow(T(1) - a_prev, T(0.5)), T(0));
  }
};

template <class T = float, class D = Cpu>
class EulerDiscreteScheduler : public Scheduler<T, D> {
 public:
  explicit EulerDiscreteScheduler(const SchedulerConfig& c = SchedulerConfig::from_json({}, "euler", "EulerDiscreteScheduler"))
      : cfg_(c) {
    const auto ac = c.alphas_cumprod();
    for (float a : ac) train_sigmas_.push_back(std::pow((1.0f - a) / a, 0.5f));
  }

  void set_timesteps(int n) override {
    if (n <= 0 || n > cfg_.num_train_timesteps)
      throw InputError("EulerDiscreteScheduler: num_inference_steps must be in [1, " +
                       std::to_string(cfg_.num_train_timesteps) + "], got " + std::to_string(n));
    steps_.clear();
    const int N = cfg_.num_train_timesteps;
    if (cfg_.timestep_spacing == "linspace") {
      for (int i = n - 1; i >= 0; --i)  // np.linspace(0, N-1, n, dtype=float32)[::-1]
        steps_.push_back(static_cast<float>(n == 1 ? 0.0 : double(N - 1) * i / (n - 1)));
    } else if (cfg_.timestep_spacing == "leading") {
      const int ratio = N / n;
      for (int i = n - 1; i >= 0; --i) steps_.push_back(static_cast<float>(double(i) * ratio + cfg_.steps_offset));
    } else {
      const double ratio = double(N) / n;
      for (double v = N; v > 0; v -= ratio) steps_.push_back(static_cast<float>(std::nearbyint(v) - 1.0));
    }
    sigmas_.clear();
    for (double t : steps_) {  // np.interp(timesteps, arange(N), sigmas) in float64
      const double lo = std::floor(t);
      const std::size_t i = static_cast<std::size_t>(std::min(std::max(lo, 0.0), double(N - 1)));
      const std::size_t j = std::min(i + 1, std::size_t(N - 1));
      const double frac = t - double(i);
      sigmas_.push_back(static_cast<float>(double(train_sigmas_[i]) + (double(train_sigmas_[j]) - train_sigmas_[i]) * frac));
    }
    sigmas_.push_back(0.0f);
    step_index_ = 0;
  }

  const std::vector<double>& timesteps() const override { return steps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }
  std::size_t step_index() const { return step_index_; }

  /// For "linspace"/"trailing" spacing the largest sigma, else sqrt(max^2 + 1).
  T init_noise_sigma() const override {
    const float mx = sigmas_.empty() ? 0.0f : *std::max_element(sigmas_.begin(), sigmas_.end());
    return cfg_.timestep_spacing == "leading" ? std::pow(mx * mx + 1.0f, 0.5f) : mx;
  }

  Tensor<T, 4, D> scale_model_input(const Tensor<T, 4, D>& sample, double t) override {
    const float sigma = sigmas_.at(index_of(t));
    return ops::divide(D{}, sample, static_cast<T>(std::pow(sigma * sigma + 1.0f, 0.5f)));
  }

  /// s_churn = 0: deterministic; rng and noise are unused.
  Tensor<T, 4, D> step(const Tensor<T, 4, D>& eps, double t, const Tensor<T, 4, D>& sample, Rng&,
                       const Tensor<T, 4, D>* = nullptr) override {
    this->check_shapes("EulerDiscreteScheduler", eps, sample, nullptr);
    const std::size_t i = index_of(t);
    const T sigma = sigmas_[i], dt = static_cast<T>(sigmas_[i + 1] - sigmas_[i]);
    step_index_ = i + 1;
    return ops::euler_step(D{}, eps, sample, sigma, dt);
  }

 private:
  /// diffusers tracks a step index from the first timestep it sees; here the index of t in
  /// the schedule (the current step's when t repeats).
  std::size_t index_of(double t) const {
    if (sigmas_.empty()) throw InputError("EulerDiscreteScheduler: call set_timesteps() before stepping");
    if (step_index_ < steps_.size() && steps_[step_index_] == t) return step_index_;
    for (std::size_t i = 0; i < steps_.size(); ++i)
      if (steps_[i] == t) return i;
    throw InputError("EulerDiscreteScheduler: timestep " + std::to_string(t) + " is not in the schedule");
  }

  SchedulerConfig cfg_;
  std::vector<float> train_sigmas_, sigmas_;
  std::vector<double> steps_;
  std::size_t step_index_ = 0;
};

}  // namespace diffblocks
