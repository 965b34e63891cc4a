/* The C API from an installed diffblocks (find_package's diffblocks::c, and by hand from a
 * moved prefix): the library's version is the package's, an error crosses as a code and a
 * message (no C++ exception), and a user's job works from plain C: load the origin_a fixture,
 * read its inputs with the library's safetensors reader, run the forward pass and compare with
 * PyTorch's output at the accuracy contract (CONSUMER_FIXTURES: diffblocks' tests/fixtures). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <diffblocks/c_api.h>

static int fail(const char* what) {
  fprintf(stderr, "c_consumer: %s: %s\n", what, diffblocks_last_error());
  return 1;
}

/* Tensor `name` of `file` (floats) into a malloc'd buffer; NULL on failure. */
static float* read_f32(const char* file, const char* name, int64_t* shape, int32_t* rank, size_t* n) {
  if (diffblocks_tensor_file_shape(file, name, NULL, shape, rank) != DIFFBLOCKS_STATUS_OK) return NULL;
  *n = 1;
  for (int32_t i = 0; i < *rank; ++i) *n *= (size_t)shape[i];
  float* data = malloc(*n * sizeof(float));
  if (data && diffblocks_tensor_file_read_f32(file, name, data, *n, NULL) != DIFFBLOCKS_STATUS_OK) {
    free(data);
    return NULL;
  }
  return data;
}

static int origin_a_matches_pytorch(const char* fixtures) {
  char model[1024], inputs[1024], expected[1024];
  snprintf(model, sizeof model, "%s/origin_a", fixtures);
  snprintf(inputs, sizeof inputs, "%s/origin_a/inputs.safetensors", fixtures);
  snprintf(expected, sizeof expected, "%s/origin_a/expected.safetensors", fixtures);
  diffblocks_model* m = NULL;
  if (diffblocks_load(model, "cpu", "f32", &m) != DIFFBLOCKS_STATUS_OK) return fail("load origin_a");
  static const char* names[4] = {"x", "mask", "mu", "t"};
  int64_t shapes[4][DIFFBLOCKS_MAX_RANK], ref_shape[DIFFBLOCKS_MAX_RANK], out_shape[DIFFBLOCKS_MAX_RANK];
  diffblocks_named_tensor in[4];
  int status = 0;
  for (int i = 0; i < 4; ++i) {
    in[i].name = names[i];
    in[i].dtype = DIFFBLOCKS_TENSOR_F32;
    in[i].shape = shapes[i];
    in[i].data = read_f32(inputs, names[i], shapes[i], &in[i].rank, &in[i].size);
    if (!in[i].data) status = fail(names[i]);
  }
  int32_t ref_rank = 0, out_rank = 0;
  size_t n = 0;
  float* ref = read_f32(expected, "out", ref_shape, &ref_rank, &n);
  float* out = ref ? malloc(n * sizeof(float)) : NULL;
  if (!ref || !out) status = fail("expected output");
  if (!status && diffblocks_forward(m, in, 4, out, n, out_shape, &out_rank) != DIFFBLOCKS_STATUS_OK)
    status = fail("forward");
  if (!status) {
    double err = 0, peak = 1;
    for (size_t i = 0; i < n; ++i) {
      err = fmax(err, fabs((double)out[i] - (double)ref[i]));
      peak = fmax(peak, fabs((double)ref[i]));
    }
    if (out_rank != ref_rank || memcmp(out_shape, ref_shape, sizeof(int64_t) * (size_t)ref_rank) != 0) {
      fprintf(stderr, "c_consumer: origin_a: the output's shape is not PyTorch's\n");
      status = 1;
    } else if (!(err <= 1e-4 * peak)) {
      fprintf(stderr, "c_consumer: origin_a: max abs error %g against PyTorch (bound %g)\n", err, 1e-4 * peak);
      status = 1;
    } else {
      printf("c_consumer: origin_a matches PyTorch (max abs error %.2g)\n", err);
    }
  }
  for (int i = 0; i < 4; ++i) free((void*)in[i].data);
  free(ref);
  free(out);
  diffblocks_free(m);
  return status;
}

int main(void) {
  if (strcmp(diffblocks_version_string(), EXPECTED_VERSION) != 0) {
    fprintf(stderr, "libdiffblocks_c says %s, the build says %s\n", diffblocks_version_string(), EXPECTED_VERSION);
    return 1;
  }
  if (diffblocks_set_num_threads(0) != DIFFBLOCKS_STATUS_INVALID_ARGUMENT ||
      !strstr(diffblocks_last_error(), "threads 0")) {
    fprintf(stderr, "set_num_threads(0) did not fail as documented: %s\n", diffblocks_last_error());
    return 1;
  }
  if (strlen(CONSUMER_FIXTURES) > 0 && origin_a_matches_pytorch(CONSUMER_FIXTURES) != 0) return 1;
  printf("c_consumer: diffblocks %s, C API OK\n", diffblocks_version_string());
  return 0;
}
