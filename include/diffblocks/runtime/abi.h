/* The interface between the runtime (runtime/model.hpp) and a device backend: the CPU backend,
 * compiled into the program, and the CUDA backend, a module opened at run time
 * (libdiffblocks_cuda.so, runtime/cuda_module.hpp).
 *
 * Plain C on purpose: the program and the module may be built by different compilers (g++,
 * nvcc) with different flags, so nothing crosses but C types. No exception crosses either:
 * every backend function returns a status and reports its message through host->fail; every
 * host callback that can fail returns non-zero after keeping its own error, and the backend
 * then returns DIFFBLOCKS_ABORTED, so the host rethrows what it kept. Memory crosses only as
 * buffers the host allocates (host->output), never freed by the other side.
 *
 * A module exports two functions (DIFFBLOCKS_BACKEND_ABI_SYMBOL, DIFFBLOCKS_BACKEND_GET_SYMBOL):
 * the ABI number it was built for, checked before anything else is used, and its table.
 * Change DIFFBLOCKS_BACKEND_ABI whenever anything in this file changes. */
#ifndef DIFFBLOCKS_RUNTIME_ABI_H
#define DIFFBLOCKS_RUNTIME_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIFFBLOCKS_BACKEND_ABI 2
#define DIFFBLOCKS_BACKEND_ABI_SYMBOL "diffblocks_backend_abi"
#define DIFFBLOCKS_BACKEND_GET_SYMBOL "diffblocks_backend_get"

/* What went wrong: one value per diffblocks::Error subclass (and the std exceptions the CLI
 * tells apart), so the host rethrows the class the backend threw (runtime/status.hpp). */
enum diffblocks_status {
  DIFFBLOCKS_OK = 0,
  DIFFBLOCKS_ERROR = 1,           /* diffblocks::Error */
  DIFFBLOCKS_IO_ERROR = 2,        /* diffblocks::IoError */
  DIFFBLOCKS_CONFIG_ERROR = 3,    /* diffblocks::ConfigError */
  DIFFBLOCKS_LOAD_ERROR = 4,      /* diffblocks::LoadError */
  DIFFBLOCKS_INPUT_ERROR = 5,     /* diffblocks::InputError */
  DIFFBLOCKS_OUT_OF_MEMORY = 6,   /* diffblocks::OutOfMemoryError */
  DIFFBLOCKS_CUDA_ERROR = 7,      /* diffblocks::CudaError */
  DIFFBLOCKS_BAD_ALLOC = 8,       /* std::bad_alloc */
  DIFFBLOCKS_LENGTH_ERROR = 9,    /* std::length_error */
  DIFFBLOCKS_OTHER_ERROR = 10,    /* any other exception */
  DIFFBLOCKS_ABORTED = 11         /* a host callback failed; the host holds the reason */
};

enum diffblocks_dtype { DIFFBLOCKS_F32 = 0, DIFFBLOCKS_I64 = 1 };

/* The U-Net a model file's config names. */
enum diffblocks_model_kind { DIFFBLOCKS_ORIGIN = 0, DIFFBLOCKS_DIFFUSER = 1 };

/* The scalar type a model is loaded as (parameters and activations; times and sampler state
 * stay float32 in every type). */
enum diffblocks_model_dtype { DIFFBLOCKS_MODEL_F32 = 0, DIFFBLOCKS_MODEL_BF16 = 1, DIFFBLOCKS_MODEL_F16 = 2 };

/* What host->text receives. */
enum diffblocks_text { DIFFBLOCKS_TEXT_DEVICE = 0, DIFFBLOCKS_TEXT_CLASS = 1, DIFFBLOCKS_TEXT_CONFIG = 2 };

/* A named host tensor, row-major and contiguous: float for DIFFBLOCKS_F32, int64_t for
 * DIFFBLOCKS_I64 (integer ids). The names are the CLI's input names (DESIGN.md). */
typedef struct diffblocks_tensor {
  const char* name;
  int32_t dtype;
  int32_t rank;
  const int64_t* shape;
  const void* data;
} diffblocks_tensor;

/* The caller's side of one call. Callbacks a call does not use may be NULL. */
typedef struct diffblocks_host {
  void* ctx;
  /* The error of a failed call, once (message: one line, already escaped). */
  void (*fail)(void* ctx, int32_t status, const char* message);
  /* A buffer for the result: prod(shape) floats, or NULL when the host cannot provide it. */
  float* (*output)(void* ctx, int32_t rank, const int64_t* shape);
  /* After every sampling step (from 1). Non-zero: stop. */
  int32_t (*progress)(void* ctx, int32_t step, int32_t steps, double seconds);
  /* During load, once the config names the U-Net and before any weight is read. Non-zero: stop. */
  int32_t (*config_read)(void* ctx, int32_t kind);
  /* A text (enum diffblocks_text); size bytes, not NUL-terminated. */
  void (*text)(void* ctx, int32_t what, const char* data, size_t size);
  /* One checkpoint tensor, in file order (describe). Names may hold any byte, NUL included. */
  void (*weight)(void* ctx, const char* name, size_t name_size, const char* dtype, int32_t rank, const int64_t* shape);
} diffblocks_host;

/* Sampling (runtime::SampleOptions). */
typedef struct diffblocks_sample_options {
  int32_t steps;
  int32_t stochastic;           /* Origin: the stochastic Grad-TTS sampler */
  uint64_t seed;                /* its noise, or DDPM's */
  const char* scheduler;        /* Diffuser: "ddim", "ddpm" or "euler" */
  const char* scheduler_config; /* Diffuser: a diffusers scheduler config (JSON); size 0: defaults */
  size_t scheduler_config_size;
  const char* scheduler_origin; /* names the config in messages */
} diffblocks_sample_options;

/* A device backend. A model handle is the backend's own; any number of threads may call
 * forward/sample on one model at once (the library's models are immutable during a call). */
typedef struct diffblocks_backend {
  uint32_t abi;                /* DIFFBLOCKS_BACKEND_ABI */
  const char* device;          /* "cpu", "cuda" */
  const char* library_version; /* DIFFBLOCKS_VERSION of the headers the backend was built from */
  /* Whether the device can be used now (CUDA: a GPU is there). */
  int32_t (*open)(const diffblocks_host* host);
  /* host->text(DIFFBLOCKS_TEXT_DEVICE): "2 threads", "cuda: NVIDIA H200, 132 SMs, ...". */
  int32_t (*describe_device)(const diffblocks_host* host);
  /* A model file (DESIGN.md, Model files) as a model of scalar type `dtype` (DIFFBLOCKS_DTYPE_*):
   * *model and *kind on success. Calls host->config_read. */
  int32_t (*load)(const char* path, int32_t dtype, const diffblocks_host* host, void** model, int32_t* kind);
  void (*release)(void* model);
  /* host->text(CLASS), host->text(CONFIG: the config as JSON), host->weight per checkpoint tensor. */
  int32_t (*describe)(void* model, const diffblocks_host* host, uint64_t* parameters);
  /* One U-Net forward; the result through host->output; seconds from the inputs on the device
   * to the result on the host. */
  int32_t (*forward)(void* model, const diffblocks_tensor* inputs, size_t n, const diffblocks_host* host,
                     double* seconds);
  /* Origin: Grad-TTS reverse diffusion; Diffuser: the scheduler's loop. Result via host->output. */
  int32_t (*sample)(void* model, const diffblocks_tensor* inputs, size_t n, const diffblocks_sample_options* options,
                    const diffblocks_host* host);
} diffblocks_backend;

/* What a module exports under DIFFBLOCKS_BACKEND_ABI_SYMBOL and DIFFBLOCKS_BACKEND_GET_SYMBOL. */
typedef uint32_t (*diffblocks_backend_abi_fn)(void);
typedef const diffblocks_backend* (*diffblocks_backend_get_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* DIFFBLOCKS_RUNTIME_ABI_H */
