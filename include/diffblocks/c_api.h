/* diffblocks C API: load a model (Origin = Grad-TTS's GradLogPEstimator2d, or Diffuser =
 * diffusers' UNet2DConditionModel), run one forward pass or a whole sampling run on caller
 * buffers, and read / write safetensors tensors. Plain C (C99 and later, and C++), in the
 * compiled library diffblocks::c (libdiffblocks_c.so; CMake option DIFFBLOCKS_BUILD_C_API).
 *
 *   diffblocks_model* m = NULL;
 *   if (diffblocks_load("models/grad-tts", "cpu", "f32", &m) != DIFFBLOCKS_STATUS_OK)
 *     fprintf(stderr, "%s\n", diffblocks_last_error());
 *
 * Names: every public name starts with diffblocks_ / DIFFBLOCKS_ (DESIGN.md). The runtime's
 * internal backend table (diffblocks/runtime/abi.h) uses the same prefix; this header never
 * reuses one of its names (statuses are DIFFBLOCKS_STATUS_*, tensor types DIFFBLOCKS_TENSOR_*,
 * model kinds DIFFBLOCKS_KIND_*), so both can be included in one translation unit.
 *
 * Errors: every function that can fail returns a diffblocks_code; on failure
 * diffblocks_last_error() gives a one-line message naming what is wrong (the file, the tensor,
 * the shapes), as the C++ library's exceptions do. The message is per thread and holds until the
 * next call of this API on that thread: every function but diffblocks_last_error,
 * diffblocks_code_name and the version functions clears it first. No C++ exception ever leaves
 * the library: out of memory is DIFFBLOCKS_STATUS_OUT_OF_MEMORY, anything unforeseen
 * DIFFBLOCKS_STATUS_INTERNAL_ERROR. Invalid arguments (NULL pointers, ranks outside
 * 0..DIFFBLOCKS_MAX_RANK, negative dimensions, a data size that does not fill the shape,
 * unknown device / dtype / tensor type) are DIFFBLOCKS_STATUS_INVALID_ARGUMENT, never a crash.
 *
 * Threads: a model may be used by any number of threads at once; diffblocks_free must not race
 * with a call on the same model. */
#ifndef DIFFBLOCKS_C_API_H
#define DIFFBLOCKS_C_API_H

#include <stddef.h>
#include <stdint.h>

#if defined(DIFFBLOCKS_C_BUILDING) && defined(__GNUC__)
#define DIFFBLOCKS_C_EXPORT __attribute__((visibility("default")))
#else
#define DIFFBLOCKS_C_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The most dimensions a tensor of this API has (shape arrays of this size are always enough). */
#define DIFFBLOCKS_MAX_RANK 8

/* What a call returned. One code per error class of the C++ library (diffblocks::Error and its
 * subclasses), plus the API's own. */
typedef enum diffblocks_code {
  DIFFBLOCKS_STATUS_OK = 0,
  DIFFBLOCKS_STATUS_ERROR = 1,            /* diffblocks::Error (e.g. an f16 model overflowed) */
  DIFFBLOCKS_STATUS_IO_ERROR = 2,         /* diffblocks::IoError: a file cannot be read / written */
  DIFFBLOCKS_STATUS_CONFIG_ERROR = 3,     /* diffblocks::ConfigError: a bad config or scheduler config */
  DIFFBLOCKS_STATUS_LOAD_ERROR = 4,       /* diffblocks::LoadError: checkpoint and config disagree */
  DIFFBLOCKS_STATUS_INPUT_ERROR = 5,      /* diffblocks::InputError: inputs that do not fit the model */
  DIFFBLOCKS_STATUS_OUT_OF_MEMORY = 6,    /* diffblocks::OutOfMemoryError, std::bad_alloc */
  DIFFBLOCKS_STATUS_CUDA_ERROR = 7,       /* diffblocks::CudaError */
  DIFFBLOCKS_STATUS_INVALID_ARGUMENT = 8, /* a bad argument to this API */
  DIFFBLOCKS_STATUS_CANCELLED = 9,        /* the progress callback returned non-zero */
  DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL = 10, /* the output buffer is too small; the shape was reported */
  DIFFBLOCKS_STATUS_INTERNAL_ERROR = 11   /* any other failure */
} diffblocks_code;

/* "DIFFBLOCKS_STATUS_OK", ...; "DIFFBLOCKS_STATUS_UNKNOWN" for another value. Never NULL. */
DIFFBLOCKS_C_EXPORT const char* diffblocks_code_name(diffblocks_code code);

/* The message of the last failed call on this thread; "" after a successful one. Never NULL;
 * valid until the next call of this API on the thread. */
DIFFBLOCKS_C_EXPORT const char* diffblocks_last_error(void);

/* The library's version: "MAJOR.MINOR.PATCH", and its numbers (each pointer may be NULL). */
DIFFBLOCKS_C_EXPORT const char* diffblocks_version_string(void);
DIFFBLOCKS_C_EXPORT void diffblocks_version(int* major, int* minor, int* patch);

/* CPU threads for the following calls (the whole process): 1 to 4 x the hardware threads, at
 * most 256; another value is DIFFBLOCKS_STATUS_INVALID_ARGUMENT. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_set_num_threads(int32_t threads);
DIFFBLOCKS_C_EXPORT int32_t diffblocks_get_num_threads(void);

/* ---- Tensors ---------------------------------------------------------------------------- */

/* Element types: float, or int64_t (integer ids such as spk_id, class_labels, timesteps). */
enum { DIFFBLOCKS_TENSOR_F32 = 0, DIFFBLOCKS_TENSOR_I64 = 1 };

/* A named tensor in caller memory: row-major and contiguous, `size` elements of `dtype` at
 * `data` (size must equal the product of the shape; data may be NULL only when size is 0).
 * rank 0 (a scalar: size 1) to DIFFBLOCKS_MAX_RANK; shape may be NULL when rank is 0. */
typedef struct diffblocks_named_tensor {
  const char* name;
  int32_t dtype; /* DIFFBLOCKS_TENSOR_F32 or DIFFBLOCKS_TENSOR_I64 */
  int32_t rank;
  const int64_t* shape;
  const void* data;
  size_t size; /* elements at data */
} diffblocks_named_tensor;

/* ---- Models ----------------------------------------------------------------------------- */

typedef struct diffblocks_model diffblocks_model; /* opaque */

/* The U-Net a model's config names. */
enum { DIFFBLOCKS_KIND_ORIGIN = 0, DIFFBLOCKS_KIND_DIFFUSER = 1 };

/* What an output shape is asked for. */
enum { DIFFBLOCKS_TASK_FORWARD = 0, DIFFBLOCKS_TASK_SAMPLE = 1 };

/* Loads a model file or directory (config.json + one .safetensors, or one .safetensors whose
 * metadata holds the config) on `device` ("cpu" or "cuda"; NULL: "cpu") as `dtype` ("f32",
 * "bf16" or "f16"; NULL: "f32"). On success *model is the handle (free it with diffblocks_free);
 * on failure *model is NULL. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_load(const char* path, const char* device, const char* dtype,
                                                    diffblocks_model** model);

/* Releases a model; NULL is allowed and does nothing. */
DIFFBLOCKS_C_EXPORT void diffblocks_free(diffblocks_model* model);

/* DIFFBLOCKS_KIND_ORIGIN or DIFFBLOCKS_KIND_DIFFUSER; -1 (and a last error) for NULL. */
DIFFBLOCKS_C_EXPORT int32_t diffblocks_kind(const diffblocks_model* model);

/* The inputs, by the CLI's names (DESIGN.md):
 *   Origin   forward: x, mask, mu (B, n_feats, T), t (B,)        sample: z, mask, mu
 *            both, optional: spk (B, D) | spk_id (B,), emo | emo_id, psd (B, n_psd, T)
 *   Diffuser forward: sample (B, C, H, W), timestep (B,) or scalar    sample: sample
 *            both, optional: encoder_hidden_states, encoder_attention_mask, class_labels,
 *            image_embeds, hint, text_embeds, time_ids
 * A missing input, an unexpected name, a wrong rank or non-integer ids are
 * DIFFBLOCKS_STATUS_INPUT_ERROR naming the input; shapes that disagree with the model are
 * reported by the model (INPUT_ERROR). Integer inputs may be given as I64 or integral F32, float
 * inputs as F32 or I64. */

/* The shape (*rank dimensions into shape[]) the task's result will have for these inputs,
 * without running the model: Origin (B, n_feats, T) as x / z, Diffuser (B, out_channels, H, W).
 * The inputs' names, ranks and types are checked here; their shapes against the model only
 * when it runs. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_output_shape(const diffblocks_model* model, int32_t task,
                                                            const diffblocks_named_tensor* inputs, size_t n_inputs,
                                                            int64_t shape[DIFFBLOCKS_MAX_RANK], int32_t* rank);

/* One U-Net forward pass into `out` (capacity: floats it holds). out_shape / out_rank (each may
 * be NULL) receive the result's shape. When the result does not fit (out NULL or capacity too
 * small) the call returns DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL with the shape and writes nothing
 * to out; that is found before the model runs, so forward(model, in, n, NULL, 0, shape, &rank)
 * is a cheap query. On any failure `out` is left untouched. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_forward(const diffblocks_model* model, const diffblocks_named_tensor* inputs,
                                                       size_t n_inputs, float* out, size_t capacity,
                                                       int64_t out_shape[DIFFBLOCKS_MAX_RANK], int32_t* out_rank);

/* Called after every sampling step: step from 1 to steps, the step's seconds. Return 0 to go
 * on, non-zero to stop: the call then returns DIFFBLOCKS_STATUS_CANCELLED and writes nothing. */
typedef int (*diffblocks_progress_fn)(void* user, int step, int steps, double seconds);

/* Sampling options; diffblocks_sampling_init sets the defaults. */
typedef struct diffblocks_sampling {
  int32_t steps;                 /* > 0; default 10 */
  int32_t stochastic;            /* Origin: Grad-TTS's stochastic sampler (non-zero); default 0 (ODE) */
  uint64_t seed;                 /* the stochastic sampler's noise, or DDPM's; default 0 */
  const char* scheduler;         /* Diffuser: "ddim" (NULL or ""), "ddpm" or "euler"; Origin: NULL */
  const char* scheduler_config;  /* Diffuser: a diffusers scheduler config, JSON text; NULL: defaults */
  diffblocks_progress_fn progress; /* may be NULL */
  void* progress_user;           /* passed to progress */
} diffblocks_sampling;

DIFFBLOCKS_C_EXPORT void diffblocks_sampling_init(diffblocks_sampling* options);

/* Origin: Grad-TTS reverse diffusion from z; Diffuser: the scheduler's loop from `sample`.
 * options NULL: the defaults. Output as diffblocks_forward (BUFFER_TOO_SMALL before any step). */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_sample(const diffblocks_model* model, const diffblocks_named_tensor* inputs,
                                                      size_t n_inputs, const diffblocks_sampling* options, float* out,
                                                      size_t capacity, int64_t out_shape[DIFFBLOCKS_MAX_RANK],
                                                      int32_t* out_rank);

/* ---- safetensors files ------------------------------------------------------------------ */

/* Tensor `name` of a safetensors file: its shape, and the type it reads as (*dtype may be
 * NULL): DIFFBLOCKS_TENSOR_F32 for floating dtypes (F32, F16, BF16, F64), DIFFBLOCKS_TENSOR_I64
 * for integer ones. IO_ERROR naming the file and the tensor when it cannot be read or is not there. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_tensor_file_shape(const char* path, const char* name, int32_t* dtype,
                                                                 int64_t shape[DIFFBLOCKS_MAX_RANK], int32_t* rank);

/* The tensor's values as float (any numeric dtype) / int64_t (an integer dtype, or floats that
 * are all integral) into out, which holds `capacity` elements; BUFFER_TOO_SMALL (nothing
 * written) when the tensor has more. *count (may be NULL) receives the element count. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_tensor_file_read_f32(const char* path, const char* name, float* out,
                                                                    size_t capacity, size_t* count);
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_tensor_file_read_i64(const char* path, const char* name, int64_t* out,
                                                                    size_t capacity, size_t* count);

/* Writes the tensors (F32 or I64, distinct names) to a safetensors file, atomically: on failure
 * nothing is left at path and what was there is unchanged. */
DIFFBLOCKS_C_EXPORT diffblocks_code diffblocks_tensor_file_write(const char* path, const diffblocks_named_tensor* tensors,
                                                                 size_t n_tensors);

#ifdef __cplusplus
}
#endif

#endif /* DIFFBLOCKS_C_API_H */
