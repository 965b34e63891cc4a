#include <diffblocks/c_api.h>
#include <stdio.h>
#include <stdlib.h>

static void check(diffblocks_code c) {
  if (c == DIFFBLOCKS_STATUS_OK) return;
  fprintf(stderr, "%s: %s\n", diffblocks_code_name(c), diffblocks_last_error());  // names file, tensor, shape
  exit(1);
}

/* Tensor `name` of a safetensors file, in a malloc'd buffer. */
static diffblocks_named_tensor read_input(const char* file, const char* name, int64_t* shape) {
  diffblocks_named_tensor t = {name, DIFFBLOCKS_TENSOR_F32, 0, shape, NULL, 1};
  check(diffblocks_tensor_file_shape(file, name, NULL, shape, &t.rank));
  for (int i = 0; i < t.rank; ++i) t.size *= (size_t)shape[i];
  float* data = malloc(t.size * sizeof(float));
  check(diffblocks_tensor_file_read_f32(file, name, data, t.size, NULL));
  t.data = data;
  return t;
}

static int progress(void* user, int step, int steps, double seconds) {
  (void)user;
  printf("step %d/%d %.3f s\n", step, steps, seconds);
  return 0; /* non-zero cancels: diffblocks_sample returns DIFFBLOCKS_STATUS_CANCELLED */
}

int main(void) {
  diffblocks_model* m = NULL;
  check(diffblocks_load("examples/data/demo_model", "cpu", "f32", &m));
  const char* file = "examples/data/demo_inputs.safetensors";
  int64_t shapes[3][DIFFBLOCKS_MAX_RANK], mel_shape[DIFFBLOCKS_MAX_RANK];
  diffblocks_named_tensor in[3] = {read_input(file, "z", shapes[0]), read_input(file, "mask", shapes[1]),
                                   read_input(file, "mu", shapes[2])};
  diffblocks_sampling opt;
  diffblocks_sampling_init(&opt);
  opt.steps = 10;
  opt.progress = progress;
  const size_t n = in[0].size; /* the mel has z's shape */
  float* mel = malloc(n * sizeof(float));
  int32_t rank = 0;
  check(diffblocks_sample(m, in, 3, &opt, mel, n, mel_shape, &rank));
  const diffblocks_named_tensor out = {"mel", DIFFBLOCKS_TENSOR_F32, rank, mel_shape, mel, n};
  check(diffblocks_tensor_file_write("mel_c.safetensors", &out, 1));
  printf("mel (%lld, %lld, %lld) -> mel_c.safetensors\n", (long long)mel_shape[0], (long long)mel_shape[1],
         (long long)mel_shape[2]);
  for (int i = 0; i < 3; ++i) free((void*)in[i].data);
  free(mel);
  diffblocks_free(m);
  return 0;
}
