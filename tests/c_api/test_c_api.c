/* The C API (include/diffblocks/c_api.h), tested from C: models against the PyTorch fixtures at
 * the accuracy contract (DESIGN.md), cancellation, and every error path (status and a message
 * naming what is wrong). ctest: test_c_api FIXTURES_DIR SCRATCH_DIR. */
#define _POSIX_C_SOURCE 200809L
#include "diffblocks/c_api.h"
/* The runtime's internal backend table in the same C translation unit: no name may clash. */
#include "diffblocks/runtime/abi.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int checks = 0, failures = 0;

#define CHECK(cond, what)                                                                   \
  do {                                                                                      \
    ++checks;                                                                               \
    if (!(cond)) {                                                                          \
      ++failures;                                                                           \
      fprintf(stderr, "%s:%d: FAILED: %s (%s); last error: %s\n", __FILE__, __LINE__, #cond, \
              what, diffblocks_last_error());                                               \
    }                                                                                       \
  } while (0)

/* `code` is `want` and the last error holds `part` (NULL: any message, "" expected for OK). */
#define EXPECT(code, want, part) expect_at(__LINE__, (code), (want), (part))
static void expect_at(int line, diffblocks_code code, diffblocks_code want, const char* part) {
  const char* m = diffblocks_last_error();
  ++checks;
  if (code != want) {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: got %s, expected %s; last error: %s\n", __FILE__, line, diffblocks_code_name(code),
            diffblocks_code_name(want), m);
  } else if (want == DIFFBLOCKS_STATUS_OK && m[0] != '\0') {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: OK with a last error: %s\n", __FILE__, line, m);
  } else if (part && !strstr(m, part)) {
    ++failures;
    fprintf(stderr, "%s:%d: FAILED: %s without '%s' in its message: %s\n", __FILE__, line, diffblocks_code_name(code),
            part, m);
  }
}

static const char* fixtures;
static const char* scratch;

static const char* path_of(char* buf, const char* dir, const char* rel) {
  snprintf(buf, 1024, "%s/%s", dir, rel);
  return buf;
}

/* A tensor read from a fixture file (owned). */
typedef struct {
  char name[64];
  int32_t dtype, rank;
  int64_t shape[DIFFBLOCKS_MAX_RANK];
  size_t size;
  void* data;
} tensor;

static size_t numel(const int64_t* shape, int32_t rank) {
  size_t n = 1;
  int32_t i;
  for (i = 0; i < rank; ++i) n *= (size_t)shape[i];
  return n;
}

static tensor read_tensor(const char* file, const char* name) {
  tensor t;
  size_t count = 0;
  diffblocks_code c;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  EXPECT(diffblocks_tensor_file_shape(file, name, &t.dtype, t.shape, &t.rank), DIFFBLOCKS_STATUS_OK, NULL);
  t.size = numel(t.shape, t.rank);
  t.data = malloc((t.size ? t.size : 1) * 8);
  if (!t.data) abort();
  if (t.dtype == DIFFBLOCKS_TENSOR_I64) c = diffblocks_tensor_file_read_i64(file, name, (int64_t*)t.data, t.size, &count);
  else c = diffblocks_tensor_file_read_f32(file, name, (float*)t.data, t.size, &count);
  EXPECT(c, DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(count == t.size, "the reader's element count");
  return t;
}

static diffblocks_named_tensor view(const tensor* t) {
  diffblocks_named_tensor v;
  v.name = t->name;
  v.dtype = t->dtype;
  v.rank = t->rank;
  v.shape = t->shape;
  v.data = t->data;
  v.size = t->size;
  return v;
}

/* max |out - ref| <= tol * max(1, max |ref|) (DESIGN.md: tol 1e-4). */
static int close_to(const float* out, const float* ref, size_t n, double tol, const char* what) {
  double err = 0, scale = 1;
  size_t i;
  for (i = 0; i < n; ++i) {
    const double d = fabs((double)out[i] - (double)ref[i]);
    if (!(d <= err)) err = d; /* NaN counts */
    if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
  }
  printf("%s: max abs error %.3g (bound %.3g)\n", what, err, tol * scale);
  return err <= tol * scale;
}

/* Sampling twice with opt's seed gives the same bits into a and b; seed + 1 gives others in b. */
static void check_seeded(const diffblocks_model* m, const diffblocks_named_tensor* in, diffblocks_sampling* opt,
                         float* a, float* b, size_t n, const char* what) {
  EXPECT(diffblocks_sample(m, in, 3, opt, a, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
  EXPECT(diffblocks_sample(m, in, 3, opt, b, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(memcmp(a, b, n * sizeof(float)) == 0, what);
  opt->seed += 1;
  EXPECT(diffblocks_sample(m, in, 3, opt, b, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(memcmp(a, b, n * sizeof(float)) != 0, what);
}

static int untouched(const float* buf, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i)
    if (buf[i] != -12345.0f) return 0;
  return 1;
}

static float* sentinel_buffer(size_t n) {
  float* b = (float*)malloc((n ? n : 1) * sizeof(float));
  size_t i;
  if (!b) abort();
  for (i = 0; i < n; ++i) b[i] = -12345.0f;
  return b;
}

/* ---- the last error is per thread ------------------------------------------------------------ */

static void* fail_in_thread(void* saw) {
  *(int*)saw = diffblocks_set_num_threads(0) == DIFFBLOCKS_STATUS_INVALID_ARGUMENT &&
               strstr(diffblocks_last_error(), "threads 0") != NULL;
  return NULL;
}

static void test_error_per_thread(void) {
  pthread_t th;
  int saw = 0;
  CHECK(diffblocks_kind(NULL) == -1, "kind(NULL)");
  CHECK(pthread_create(&th, NULL, fail_in_thread, &saw) == 0 && pthread_join(th, NULL) == 0, "a thread");
  CHECK(saw, "the other thread saw its own error");
  CHECK(strcmp(diffblocks_last_error(), "model is NULL") == 0, "this thread's error is unchanged");
}

/* One forward per thread on one model at once (c_api.h: any number of threads may). */
typedef struct {
  const diffblocks_model* m;
  const diffblocks_named_tensor* in;
  size_t n_in, n;
  float* out;
  diffblocks_code code;
} forward_job;

static void* forward_in_thread(void* arg) {
  forward_job* j = (forward_job*)arg;
  j->code = diffblocks_forward(j->m, j->in, j->n_in, j->out, j->n, NULL, NULL);
  return NULL;
}

/* ---- version, threads, codes ---------------------------------------------------------------- */

static void test_basics(void) {
  int major = -1, minor = -1, patch = -1;
  char expect[64];
  int32_t before;
  diffblocks_version(&major, &minor, &patch);
  snprintf(expect, sizeof expect, "%d.%d.%d", major, minor, patch);
  CHECK(major >= 0 && minor >= 0 && patch >= 0, "version numbers");
  CHECK(strcmp(diffblocks_version_string(), expect) == 0, "version string agrees with the numbers");
  diffblocks_version(NULL, NULL, NULL); /* NULL-safe */

  CHECK(strcmp(diffblocks_code_name(DIFFBLOCKS_STATUS_CANCELLED), "DIFFBLOCKS_STATUS_CANCELLED") == 0, "code name");
  CHECK(strcmp(diffblocks_code_name((diffblocks_code)99), "DIFFBLOCKS_STATUS_UNKNOWN") == 0, "unknown code name");

  before = diffblocks_get_num_threads();
  CHECK(before >= 1, "a thread count");
  EXPECT(diffblocks_set_num_threads(1), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(diffblocks_get_num_threads() == 1, "set_num_threads(1) took effect");
  EXPECT(diffblocks_set_num_threads(0), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "threads 0 is outside 1..");
  EXPECT(diffblocks_set_num_threads(-3), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "threads -3");
  EXPECT(diffblocks_set_num_threads(100000), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "threads 100000");
  CHECK(diffblocks_get_num_threads() == 1, "a refused count changes nothing");
  EXPECT(diffblocks_set_num_threads(before), DIFFBLOCKS_STATUS_OK, NULL);
}

/* ---- loading ---------------------------------------------------------------------------------- */

static void write_text(const char* path, const char* text) {
  FILE* f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

static void test_load_errors(void) {
  char p[1024], q[1024];
  diffblocks_model* m = (diffblocks_model*)&m; /* non-NULL: a failed load must set it to NULL */
  const float w = 1.0f;
  const int64_t one = 1;
  diffblocks_named_tensor stray;

  EXPECT(diffblocks_load(NULL, "cpu", "f32", &m), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "path is NULL");
  CHECK(m == NULL, "a failed load sets *model to NULL");
  EXPECT(diffblocks_load(path_of(p, fixtures, "origin_a"), "cpu", "f32", NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "model (where the handle goes) is NULL");
  EXPECT(diffblocks_load(path_of(p, fixtures, "origin_a"), "tpu", "f32", &m), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "unknown device 'tpu'");
  EXPECT(diffblocks_load(path_of(p, fixtures, "origin_a"), "cpu", "f64", &m), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "unknown model type 'f64'");
  EXPECT(diffblocks_load(path_of(p, fixtures, "no_such_model"), "cpu", "f32", &m), DIFFBLOCKS_STATUS_IO_ERROR,
         "no_such_model");
  CHECK(m == NULL, "no handle after a failed load");

  /* A config naming another class: CONFIG_ERROR naming it. */
  mkdir(path_of(p, scratch, "bad_class"), 0777);
  write_text(path_of(p, scratch, "bad_class/config.json"), "{\"_class_name\": \"Transformer2DModel\"}");
  stray.name = "w";
  stray.dtype = DIFFBLOCKS_TENSOR_F32;
  stray.rank = 1;
  stray.shape = &one;
  stray.data = &w;
  stray.size = 1;
  EXPECT(diffblocks_tensor_file_write(path_of(q, scratch, "bad_class/model.safetensors"), &stray, 1),
         DIFFBLOCKS_STATUS_OK, NULL);
  EXPECT(diffblocks_load(path_of(p, scratch, "bad_class"), "cpu", "f32", &m), DIFFBLOCKS_STATUS_CONFIG_ERROR,
         "Transformer2DModel");

  /* Origin's config with a checkpoint that does not fit it: LOAD_ERROR naming a key. */
  mkdir(path_of(p, scratch, "bad_weights"), 0777);
  write_text(path_of(p, scratch, "bad_weights/config.json"),
             "{\"_class_name\": \"GradLogPEstimator2d\", \"dim\": 64, \"n_feats\": 80}");
  EXPECT(diffblocks_tensor_file_write(path_of(q, scratch, "bad_weights/model.safetensors"), &stray, 1),
         DIFFBLOCKS_STATUS_OK, NULL);
  EXPECT(diffblocks_load(path_of(p, scratch, "bad_weights"), "cpu", "f32", &m), DIFFBLOCKS_STATUS_LOAD_ERROR,
         "bad_weights/model.safetensors: missing key 'mlp.0.weight'");
  CHECK(m == NULL, "no handle after a failed load");

  CHECK(diffblocks_kind(NULL) == -1, "kind of NULL");
  CHECK(strstr(diffblocks_last_error(), "model is NULL") != NULL, "kind(NULL) says why");
  diffblocks_free(NULL); /* allowed */
}

/* ---- Origin forward ---------------------------------------------------------------------------- */

enum { X, MASK, MU, T, N_ORIGIN };

static void test_origin_forward(void) {
  char p[1024], in_path[1024], exp_path[1024];
  diffblocks_model* m = NULL;
  tensor t[N_ORIGIN], expected;
  diffblocks_named_tensor in[N_ORIGIN + 1], bad[N_ORIGIN + 1];
  const char* names[N_ORIGIN] = {"x", "mask", "mu", "t"};
  int64_t shape[DIFFBLOCKS_MAX_RANK], flat[2];
  int32_t rank = 0, i;
  size_t n;
  float *out, *first;
  tensor spk_ids;
  int64_t ids[2] = {0, 1}, ids_shape[1] = {2};

  path_of(in_path, fixtures, "origin_a/inputs.safetensors");
  path_of(exp_path, fixtures, "origin_a/expected.safetensors");
  for (i = 0; i < N_ORIGIN; ++i) {
    t[i] = read_tensor(in_path, names[i]);
    in[i] = view(&t[i]);
  }
  expected = read_tensor(exp_path, "out");

  EXPECT(diffblocks_load(path_of(p, fixtures, "origin_a"), "cpu", "f32", &m), DIFFBLOCKS_STATUS_OK, NULL);
  if (!m) return;
  CHECK(diffblocks_kind(m) == DIFFBLOCKS_KIND_ORIGIN, "origin_a is an Origin");

  /* The shape, asked two ways, before anything runs. */
  EXPECT(diffblocks_output_shape(m, DIFFBLOCKS_TASK_FORWARD, in, N_ORIGIN, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(rank == 3 && shape[0] == 2 && shape[1] == 80 && shape[2] == 96, "forward's output shape (2, 80, 96)");
  rank = 0;
  memset(shape, 0, sizeof shape);
  EXPECT(diffblocks_forward(m, in, N_ORIGIN, NULL, 0, shape, &rank), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL,
         "needs 15360 elements (shape [2, 80, 96]) but out is NULL");
  CHECK(rank == 3 && shape[0] == 2 && shape[1] == 80 && shape[2] == 96, "BUFFER_TOO_SMALL reports the shape");
  CHECK(rank == expected.rank && numel(shape, rank) == expected.size, "the shape is the reference's");

  n = numel(shape, rank);
  out = sentinel_buffer(n);
  EXPECT(diffblocks_forward(m, in, N_ORIGIN, out, n - 1, NULL, NULL), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL,
         "but the buffer holds 15359");
  CHECK(untouched(out, n), "a too-small buffer is not written");

  EXPECT(diffblocks_forward(m, in, N_ORIGIN, out, n, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(close_to(out, (const float*)expected.data, n, 1e-4, "origin_a forward (C API)"), "origin_a vs PyTorch");
  first = sentinel_buffer(n);
  memcpy(first, out, n * sizeof(float));

  /* ---- the inputs' error paths ---- */
  /* missing input */
  EXPECT(diffblocks_forward(m, in, MU, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR, "missing input tensor 'mu'");
  /* unexpected input */
  memcpy(bad, in, sizeof in);
  memset(&spk_ids, 0, sizeof spk_ids);
  snprintf(spk_ids.name, sizeof spk_ids.name, "spk_ids");
  spk_ids.dtype = DIFFBLOCKS_TENSOR_I64;
  spk_ids.rank = 1;
  spk_ids.shape[0] = 2;
  spk_ids.data = ids;
  spk_ids.size = 2;
  bad[N_ORIGIN] = view(&spk_ids);
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN + 1, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "unexpected input tensor 'spk_ids'");
  /* wrong rank */
  memcpy(bad, in, sizeof in);
  flat[0] = 2;
  flat[1] = 80 * 96;
  bad[X].rank = 2;
  bad[X].shape = flat;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "input 'x' has shape [2, 7680] (rank 2), expected rank 3");
  /* a shape the model refuses */
  memcpy(bad, in, sizeof in);
  flat[0] = 2;
  flat[1] = 80 * 48;
  {
    int64_t half_t[3] = {2, 80, 48};
    bad[MU].shape = half_t;
    bad[MU].size = 2 * 80 * 48;
    CHECK(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL) != DIFFBLOCKS_STATUS_OK, "mu of another T");
    CHECK(strstr(diffblocks_last_error(), "mu") != NULL, "the message names mu");
  }
  /* a float input given as I64 is read as floats: t as integers is a valid input */
  {
    int64_t t_ids[2] = {0, 1};
    memcpy(bad, in, sizeof in);
    bad[T].dtype = DIFFBLOCKS_TENSOR_I64;
    bad[T].data = t_ids;
    EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
  }
  /* bad tensor types, ranks, shapes, sizes, pointers */
  memcpy(bad, in, sizeof in);
  bad[MASK].dtype = 7;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "inputs[1] ('mask'): dtype 7 is neither");
  memcpy(bad, in, sizeof in);
  bad[MASK].rank = -1;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "('mask'): rank -1 is outside 0..8");
  bad[MASK].rank = 9;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "('mask'): rank 9 is outside 0..8");
  memcpy(bad, in, sizeof in);
  {
    int64_t neg[3] = {2, -1, 96}, huge[3] = {(int64_t)1 << 40, (int64_t)1 << 40, (int64_t)1 << 40};
    bad[MU].shape = neg;
    EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
           "('mu'): shape [2, -1, 96] has a negative dimension");
    bad[MU].shape = huge;
    EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
           "('mu'): shape [1099511627776, 1099511627776, 1099511627776] is too large");
  }
  memcpy(bad, in, sizeof in);
  bad[MU].size -= 1;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "('mu'): shape [2, 80, 96] has 15360 elements but size is 15359");
  memcpy(bad, in, sizeof in);
  bad[MU].data = NULL;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "('mu'): data is NULL");
  memcpy(bad, in, sizeof in);
  bad[MU].shape = NULL;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "('mu'): shape is NULL with rank 3");
  memcpy(bad, in, sizeof in);
  bad[MU].name = NULL;
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "inputs[2]: name is NULL");
  memcpy(bad, in, sizeof in);
  bad[MU].name = "x";
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "tensor 'x' is given twice");
  EXPECT(diffblocks_forward(m, NULL, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "the tensor array is NULL but its count is 4");
  EXPECT(diffblocks_forward(NULL, in, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "model is NULL");
  /* sample's inputs given to forward: x is missing */
  memcpy(bad, in, sizeof in);
  bad[X].name = "z";
  EXPECT(diffblocks_forward(m, bad, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "missing input tensor 'x'");
  /* output_shape's own arguments */
  EXPECT(diffblocks_output_shape(m, 5, in, N_ORIGIN, shape, &rank), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "task 5");
  EXPECT(diffblocks_output_shape(m, DIFFBLOCKS_TASK_FORWARD, in, N_ORIGIN, NULL, &rank),
         DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "shape is NULL");
  EXPECT(diffblocks_output_shape(m, DIFFBLOCKS_TASK_SAMPLE, in, N_ORIGIN, shape, &rank), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "missing input tensor 'z'");
  /* a successful call clears the last error */
  CHECK(diffblocks_kind(m) == DIFFBLOCKS_KIND_ORIGIN && diffblocks_last_error()[0] == '\0', "errors are cleared");

  /* Two threads at once on the one model, each at the contract. */
  {
    pthread_t th[2];
    forward_job jobs[2];
    int k;
    for (k = 0; k < 2; ++k) {
      jobs[k].m = m;
      jobs[k].in = in;
      jobs[k].n_in = N_ORIGIN;
      jobs[k].n = n;
      jobs[k].out = sentinel_buffer(n);
      jobs[k].code = DIFFBLOCKS_STATUS_INTERNAL_ERROR;
      CHECK(pthread_create(&th[k], NULL, forward_in_thread, &jobs[k]) == 0, "a thread");
    }
    for (k = 0; k < 2; ++k) {
      pthread_join(th[k], NULL);
      CHECK(jobs[k].code == DIFFBLOCKS_STATUS_OK, "a concurrent forward");
      CHECK(close_to(jobs[k].out, (const float*)expected.data, n, 1e-4, "origin_a forward, concurrent (C API)"),
            "concurrent forward vs PyTorch");
      free(jobs[k].out);
    }
  }

  /* The result again after all that, bit for bit. */
  {
    float* again = sentinel_buffer(n);
    EXPECT(diffblocks_forward(m, in, N_ORIGIN, again, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
    CHECK(memcmp(again, first, n * sizeof(float)) == 0, "forward is deterministic");
    free(again);
  }
  diffblocks_free(m);

  /* The same model in bf16: runs, and stays near the f32 reference. */
  m = NULL;
  EXPECT(diffblocks_load(path_of(p, fixtures, "origin_a"), "cpu", "bf16", &m), DIFFBLOCKS_STATUS_OK, NULL);
  if (m) {
    EXPECT(diffblocks_forward(m, in, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
    CHECK(close_to(out, (const float*)expected.data, n, 0.1, "origin_a forward bf16 (C API)"), "bf16 near f32");
    diffblocks_free(m);
  }
  /* "cuda": runs at the contract where a GPU and the CUDA module are there; elsewhere a CUDA
   * error or the module's absence, named, and no handle. */
  m = NULL;
  {
    const diffblocks_code c = diffblocks_load(path_of(p, fixtures, "origin_a"), "cuda", "f32", &m);
    if (c == DIFFBLOCKS_STATUS_OK) {
      EXPECT(diffblocks_forward(m, in, N_ORIGIN, out, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
      CHECK(close_to(out, (const float*)expected.data, n, 1e-4, "origin_a forward cuda (C API)"), "cuda vs PyTorch");
      diffblocks_free(m);
    } else {
      printf("cuda: not available here (%s): %s\n", diffblocks_code_name(c), diffblocks_last_error());
      CHECK(c == DIFFBLOCKS_STATUS_CUDA_ERROR || c == DIFFBLOCKS_STATUS_ERROR, "cuda's failure class");
      CHECK(strstr(diffblocks_last_error(), "CUDA") != NULL || strstr(diffblocks_last_error(), "cuda") != NULL,
            "the message names CUDA");
      CHECK(m == NULL, "no handle");
    }
  }
  (void)ids_shape;
  free(first);
  free(out);
  for (i = 0; i < N_ORIGIN; ++i) free(t[i].data);
  free(expected.data);
}

/* ---- Origin sampling and cancellation ---------------------------------------------------------- */

typedef struct {
  int calls, stop_at, last_steps;
  double seconds;
} progress_state;

static int on_progress(void* user, int step, int steps, double seconds) {
  progress_state* s = (progress_state*)user;
  ++s->calls;
  s->last_steps = steps;
  if (step != s->calls) s->calls = -1000; /* steps arrive in order, from 1 */
  if (seconds >= 0) s->seconds += seconds;
  return s->stop_at && step >= s->stop_at;
}

static void test_origin_sample(void) {
  char p[1024], in_path[1024], exp_path[1024];
  diffblocks_model* m = NULL;
  tensor t[3], expected;
  diffblocks_named_tensor in[3];
  const char* names[3] = {"z", "mask", "mu"};
  diffblocks_sampling opt;
  progress_state ps;
  int64_t shape[DIFFBLOCKS_MAX_RANK];
  int32_t rank = 0, i;
  size_t n;
  float *out, *a, *b;

  path_of(in_path, fixtures, "sample_ode/inputs.safetensors");
  path_of(exp_path, fixtures, "sample_ode/expected.safetensors");
  for (i = 0; i < 3; ++i) {
    t[i] = read_tensor(in_path, names[i]);
    in[i] = view(&t[i]);
  }
  expected = read_tensor(exp_path, "out_steps_3");
  EXPECT(diffblocks_load(path_of(p, fixtures, "sample_ode"), "cpu", NULL, &m), DIFFBLOCKS_STATUS_OK, NULL);
  if (!m) return;
  EXPECT(diffblocks_output_shape(m, DIFFBLOCKS_TASK_SAMPLE, in, 3, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(rank == 3 && numel(shape, rank) == expected.size, "sample's output shape");
  n = numel(shape, rank);
  out = sentinel_buffer(n);
  a = sentinel_buffer(n);
  b = sentinel_buffer(n);

  /* 3 ODE steps against the PyTorch sampler; the progress callback sees each step. */
  diffblocks_sampling_init(&opt);
  CHECK(opt.steps == 10 && opt.stochastic == 0 && opt.progress == NULL, "sampling defaults");
  memset(&ps, 0, sizeof ps);
  opt.steps = 3;
  opt.progress = on_progress;
  opt.progress_user = &ps;
  EXPECT(diffblocks_sample(m, in, 3, &opt, out, n, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(close_to(out, (const float*)expected.data, n, 1e-4, "sample_ode 3 steps (C API)"), "sampler vs PyTorch");
  CHECK(ps.calls == 3 && ps.last_steps == 3, "progress called once per step, in order");

  /* Cancel at step 2 of 3: CANCELLED, exactly 2 calls, nothing written. */
  memset(&ps, 0, sizeof ps);
  ps.stop_at = 2;
  EXPECT(diffblocks_sample(m, in, 3, &opt, a, n, NULL, NULL), DIFFBLOCKS_STATUS_CANCELLED,
         "cancelled by the progress callback at step 2/3");
  CHECK(ps.calls == 2, "the callback ran exactly until it asked to stop");
  CHECK(untouched(a, n), "a cancelled run writes nothing");
  /* Cancel at the last step still writes nothing. */
  memset(&ps, 0, sizeof ps);
  ps.stop_at = 3;
  EXPECT(diffblocks_sample(m, in, 3, &opt, a, n, NULL, NULL), DIFFBLOCKS_STATUS_CANCELLED, "step 3/3");
  CHECK(ps.calls == 3 && untouched(a, n), "cancelled at the last step: nothing written");
  /* Too small a buffer is found before any step runs. */
  memset(&ps, 0, sizeof ps);
  EXPECT(diffblocks_sample(m, in, 3, &opt, a, n / 2, NULL, NULL), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL, "needs");
  CHECK(ps.calls == 0 && untouched(a, n), "BUFFER_TOO_SMALL before sampling");

  /* Stochastic: the same seed twice is the same, another seed differs. */
  opt.progress = NULL;
  opt.stochastic = 1;
  opt.seed = 9;
  check_seeded(m, in, &opt, a, b, n, "stochastic sampling: one seed reproduces, another differs");
  CHECK(memcmp(a, out, n * sizeof(float)) != 0, "stochastic differs from ODE");

  /* Options the Origin refuses, and bad options. */
  diffblocks_sampling_init(&opt);
  opt.steps = 0;
  EXPECT(diffblocks_sample(m, in, 3, &opt, a, n, NULL, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "options->steps must be positive, got 0");
  opt.steps = 2;
  opt.scheduler = "ddim";
  EXPECT(diffblocks_sample(m, in, 3, &opt, a, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "a scheduler applies to UNet2DConditionModel models");
  /* NULL options: the defaults (10 steps) */
  EXPECT(diffblocks_sample(m, in, 3, NULL, a, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
  diffblocks_free(m);
  free(out);
  free(a);
  free(b);
  for (i = 0; i < 3; ++i) free(t[i].data);
  free(expected.data);
}

/* ---- Diffuser ------------------------------------------------------------------------------------ */

static void test_diffuser(void) {
  char p[1024], in_path[1024], exp_path[1024];
  diffblocks_model* m = NULL;
  enum { CLASS_LABELS, TIMESTEP, EHS, SAMPLE, N_DIFF };
  const char* names[N_DIFF] = {"class_labels", "timestep", "encoder_hidden_states", "sample"};
  tensor t[N_DIFF], expected;
  diffblocks_named_tensor in[N_DIFF], bad[N_DIFF], for_sample[3];
  diffblocks_sampling opt;
  int64_t shape[DIFFBLOCKS_MAX_RANK];
  int32_t rank = 0, i;
  size_t n;
  float* out;
  const float fractional[2] = {0.0f, 2.5f};

  path_of(in_path, fixtures, "diffusers/unet_default/inputs.safetensors");
  path_of(exp_path, fixtures, "diffusers/unet_default/expected.safetensors");
  for (i = 0; i < N_DIFF; ++i) {
    t[i] = read_tensor(in_path, names[i]);
    in[i] = view(&t[i]);
  }
  CHECK(t[CLASS_LABELS].dtype == DIFFBLOCKS_TENSOR_I64, "class_labels are stored as I64");
  expected = read_tensor(exp_path, "out");
  EXPECT(diffblocks_load(path_of(p, fixtures, "diffusers/unet_default"), "cpu", "f32", &m), DIFFBLOCKS_STATUS_OK, NULL);
  if (!m) return;
  CHECK(diffblocks_kind(m) == DIFFBLOCKS_KIND_DIFFUSER, "unet_default is a Diffuser");
  EXPECT(diffblocks_forward(m, in, N_DIFF, NULL, 0, shape, &rank), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL, NULL);
  CHECK(rank == 4 && shape[0] == 2 && shape[1] == 1 && shape[2] == 16 && shape[3] == 24,
        "(B, out_channels, H, W) = (2, 1, 16, 24)");
  n = numel(shape, rank);
  CHECK(n == expected.size, "the reference's size");
  out = sentinel_buffer(n);
  EXPECT(diffblocks_forward(m, in, N_DIFF, out, n, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(close_to(out, (const float*)expected.data, n, 1e-4, "unet_default forward (C API)"), "Diffuser vs PyTorch");

  /* ids that are not integers */
  memcpy(bad, in, sizeof in);
  bad[CLASS_LABELS].dtype = DIFFBLOCKS_TENSOR_F32;
  bad[CLASS_LABELS].data = fractional;
  EXPECT(diffblocks_forward(m, bad, N_DIFF, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "'class_labels' must hold integer ids, but element 1 is 2.5");
  /* wrong rank of a Diffuser input */
  memcpy(bad, in, sizeof in);
  bad[SAMPLE].rank = 3;
  bad[SAMPLE].size = (size_t)(t[SAMPLE].shape[0] * t[SAMPLE].shape[1] * t[SAMPLE].shape[2]);
  EXPECT(diffblocks_forward(m, bad, N_DIFF, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "input 'sample' has shape [2, 2, 16] (rank 3), expected rank 4");

  /* A scalar timestep (rank 0, shape NULL) is the same timestep for every batch entry. */
  {
    float* vec = sentinel_buffer(n);
    const int64_t both[2] = {999, 999}, scalar = 999;
    memcpy(bad, in, sizeof in);
    bad[TIMESTEP].data = both;
    EXPECT(diffblocks_forward(m, bad, N_DIFF, vec, n, NULL, NULL), DIFFBLOCKS_STATUS_OK, NULL);
    bad[TIMESTEP].rank = 0;
    bad[TIMESTEP].shape = NULL;
    bad[TIMESTEP].data = &scalar;
    bad[TIMESTEP].size = 1;
    EXPECT(diffblocks_forward(m, bad, N_DIFF, out, n, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
    CHECK(rank == 4 && memcmp(vec, out, n * sizeof(float)) == 0, "scalar timestep == (B,) timestep");
    free(vec);
  }

  /* The scheduler's loop: 4 DDIM steps with a scheduler config against diffusers; DDPM's seed;
   * options it refuses. */
  {
    const char* snames[3] = {"class_labels", "encoder_hidden_states", "sample"};
    tensor st[3], sexp;
    float* again = sentinel_buffer(n);
    path_of(in_path, fixtures, "diffusers/sampling/ddim_inputs.safetensors");
    path_of(exp_path, fixtures, "diffusers/sampling/ddim_expected.safetensors");
    for (i = 0; i < 3; ++i) {
      st[i] = read_tensor(in_path, snames[i]);
      for_sample[i] = view(&st[i]);
    }
    sexp = read_tensor(exp_path, "out");
    diffblocks_sampling_init(&opt);
    opt.steps = 4;
    opt.scheduler = "ddim";
    opt.scheduler_config = "{\"num_train_timesteps\": 1000}";
    rank = 0;
    EXPECT(diffblocks_sample(m, for_sample, 3, &opt, out, n, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
    CHECK(rank == 4 && numel(shape, rank) == n && sexp.size == n, "sample's shape");
    CHECK(close_to(out, (const float*)sexp.data, n, 1e-4, "unet_default DDIM 4 steps (C API)"), "DDIM vs diffusers");
    opt.scheduler = "ddpm";
    opt.scheduler_config = NULL;
    opt.steps = 3;
    opt.seed = 4;
    check_seeded(m, for_sample, &opt, out, again, n, "DDPM: one seed reproduces, another differs");
    free(again);
    free(sexp.data);
    /* unet_default's forward inputs for the error cases below */
    for (i = 0; i < 3; ++i) free(st[i].data);
    for_sample[0] = in[CLASS_LABELS];
    for_sample[1] = in[EHS];
    for_sample[2] = in[SAMPLE];
    diffblocks_sampling_init(&opt);
    opt.steps = 2;
  }
  EXPECT(diffblocks_sample(m, in, N_DIFF, &opt, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "unexpected input tensor 'timestep'");
  opt.scheduler = "bogus";
  EXPECT(diffblocks_sample(m, for_sample, 3, &opt, out, n, NULL, NULL), DIFFBLOCKS_STATUS_CONFIG_ERROR,
         "unknown scheduler 'bogus'");
  opt.scheduler = "ddpm";
  opt.scheduler_config = "{not json";
  EXPECT(diffblocks_sample(m, for_sample, 3, &opt, out, n, NULL, NULL), DIFFBLOCKS_STATUS_CONFIG_ERROR,
         "options->scheduler_config");
  opt.scheduler = NULL;
  opt.scheduler_config = NULL;
  opt.stochastic = 1;
  EXPECT(diffblocks_sample(m, for_sample, 3, &opt, out, n, NULL, NULL), DIFFBLOCKS_STATUS_INPUT_ERROR,
         "stochastic sampling applies to GradLogPEstimator2d models");
  diffblocks_free(m);
  free(out);
  for (i = 0; i < N_DIFF; ++i) free(t[i].data);
  free(expected.data);
}

/* ---- safetensors files --------------------------------------------------------------------------- */

static void test_tensor_files(void) {
  char in_path[1024], p[1024], missing[1024];
  int64_t shape[DIFFBLOCKS_MAX_RANK];
  int32_t rank = 0, dtype = -1;
  size_t count = 0;
  float small[4] = {-12345.0f, -12345.0f, -12345.0f, -12345.0f};
  int64_t ids[4];
  const float fv[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
  const int64_t iv[3] = {7, -1, 1099511627776};
  const int64_t fshape[2] = {2, 3}, ishape[1] = {3};
  diffblocks_named_tensor w[2];
  float fr[6];
  int64_t ir[3];

  path_of(in_path, fixtures, "origin_a/inputs.safetensors");
  path_of(missing, scratch, "no_such_dir/x.safetensors");
  EXPECT(diffblocks_tensor_file_shape(missing, "x", &dtype, shape, &rank), DIFFBLOCKS_STATUS_IO_ERROR,
         "no_such_dir/x.safetensors");
  EXPECT(diffblocks_tensor_file_shape(in_path, "nope", &dtype, shape, &rank), DIFFBLOCKS_STATUS_IO_ERROR,
         "no tensor named 'nope'");
  EXPECT(diffblocks_tensor_file_shape(NULL, "x", &dtype, shape, &rank), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "path is NULL");
  EXPECT(diffblocks_tensor_file_shape(in_path, NULL, &dtype, shape, &rank), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "name is NULL");
  EXPECT(diffblocks_tensor_file_shape(in_path, "x", NULL, shape, NULL), DIFFBLOCKS_STATUS_INVALID_ARGUMENT,
         "rank is NULL");
  EXPECT(diffblocks_tensor_file_shape(in_path, "t", NULL, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(rank == 1 && shape[0] == 2, "t is (2,)");
  EXPECT(diffblocks_tensor_file_read_f32(in_path, "x", small, 4, &count), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL,
         "tensor 'x' needs 15360 elements (shape [2, 80, 96]) but the buffer holds 4");
  CHECK(count == 15360 && untouched(small, 4), "count given, nothing written");
  EXPECT(diffblocks_tensor_file_read_f32(in_path, "x", NULL, 0, NULL), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL,
         "out is NULL");
  EXPECT(diffblocks_tensor_file_read_f32(in_path, "nope", small, 4, NULL), DIFFBLOCKS_STATUS_IO_ERROR,
         "no tensor named 'nope'");
  EXPECT(diffblocks_tensor_file_read_i64(in_path, "mu", ids, 4, NULL), DIFFBLOCKS_STATUS_BUFFER_TOO_SMALL, "'mu'");
  EXPECT(diffblocks_tensor_file_read_i64(in_path, "t", ids, 4, &count), DIFFBLOCKS_STATUS_IO_ERROR, "'t'");
  EXPECT(diffblocks_tensor_file_read_i64(NULL, "t", ids, 4, &count), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "path");

  /* A file that is no safetensors file, and a tensor of rank 9 (beyond DIFFBLOCKS_MAX_RANK). */
  path_of(p, scratch, "garbage.safetensors");
  write_text(p, "this is not a safetensors file");
  EXPECT(diffblocks_tensor_file_shape(p, "x", &dtype, shape, &rank), DIFFBLOCKS_STATUS_IO_ERROR, "garbage.safetensors");
  {
    static const char header[] = "{\"deep\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}";
    const unsigned long long len = sizeof header - 1;
    unsigned char le[8];
    const float value = 1.0f;
    int k;
    FILE* f;
    for (k = 0; k < 8; ++k) le[k] = (unsigned char)(len >> (8 * k));
    path_of(p, scratch, "rank9.safetensors");
    f = fopen(p, "wb");
    CHECK(f != NULL, "scratch file");
    if (f) {
      fwrite(le, 1, 8, f);
      fwrite(header, 1, len, f);
      fwrite(&value, 1, 4, f);
      fclose(f);
      EXPECT(diffblocks_tensor_file_shape(p, "deep", &dtype, shape, &rank), DIFFBLOCKS_STATUS_IO_ERROR,
             "tensor 'deep' has shape [1, 1, 1, 1, 1, 1, 1, 1, 1], rank above 8");
      EXPECT(diffblocks_tensor_file_read_f32(p, "deep", fr, 6, &count), DIFFBLOCKS_STATUS_OK, NULL);
      CHECK(count == 1 && fr[0] == 1.0f, "a rank-9 tensor still reads as its values");
    }
  }

  /* Write F32 and I64 tensors, read them back exactly. */
  w[0].name = "f";
  w[0].dtype = DIFFBLOCKS_TENSOR_F32;
  w[0].rank = 2;
  w[0].shape = fshape;
  w[0].data = fv;
  w[0].size = 6;
  w[1].name = "i";
  w[1].dtype = DIFFBLOCKS_TENSOR_I64;
  w[1].rank = 1;
  w[1].shape = ishape;
  w[1].data = iv;
  w[1].size = 3;
  path_of(p, scratch, "written.safetensors");
  remove(p);
  EXPECT(diffblocks_tensor_file_write(p, w, 2), DIFFBLOCKS_STATUS_OK, NULL);
  EXPECT(diffblocks_tensor_file_shape(p, "i", &dtype, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(dtype == DIFFBLOCKS_TENSOR_I64 && rank == 1 && shape[0] == 3, "the I64 tensor's type and shape");
  EXPECT(diffblocks_tensor_file_shape(p, "f", &dtype, shape, &rank), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(dtype == DIFFBLOCKS_TENSOR_F32 && rank == 2 && shape[0] == 2 && shape[1] == 3, "the F32 tensor's type and shape");
  EXPECT(diffblocks_tensor_file_read_f32(p, "f", fr, 6, &count), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(count == 6 && memcmp(fr, fv, sizeof fv) == 0, "F32 round trip");
  EXPECT(diffblocks_tensor_file_read_i64(p, "i", ir, 3, &count), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(count == 3 && memcmp(ir, iv, sizeof iv) == 0, "I64 round trip");

  /* A bad entry: refused, and the file there is unchanged (atomic). */
  w[1].rank = 9;
  EXPECT(diffblocks_tensor_file_write(p, w, 2), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "tensors[1] ('i'): rank 9");
  w[1].rank = 1;
  w[1].name = "f";
  EXPECT(diffblocks_tensor_file_write(p, w, 2), DIFFBLOCKS_STATUS_IO_ERROR, "tensor 'f' given twice");
  EXPECT(diffblocks_tensor_file_read_i64(p, "i", ir, 3, &count), DIFFBLOCKS_STATUS_OK, NULL);
  CHECK(memcmp(ir, iv, sizeof iv) == 0, "a refused write leaves the file as it was");
  EXPECT(diffblocks_tensor_file_write(missing, w, 1), DIFFBLOCKS_STATUS_IO_ERROR, "no_such_dir");
  EXPECT(diffblocks_tensor_file_write(p, NULL, 2), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "the tensor array is NULL");
  EXPECT(diffblocks_tensor_file_write(NULL, w, 1), DIFFBLOCKS_STATUS_INVALID_ARGUMENT, "path is NULL");
  {
    FILE* f = fopen(missing, "rb");
    CHECK(f == NULL, "nothing written where the write failed");
    if (f) fclose(f);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FIXTURES_DIR SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  fixtures = argv[1];
  scratch = argv[2];
  if (mkdir(scratch, 0777) != 0 && errno != EEXIST) {
    perror(scratch);
    return 2;
  }
  test_basics();
  test_error_per_thread();
  test_tensor_files();
  test_load_errors();
  test_origin_forward();
  test_origin_sample();
  test_diffuser();
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
