/* The C API from an installed diffblocks (find_package's diffblocks::c, and by hand from a
 * moved prefix): the library's version is the package's, and an error crosses as a code and a
 * message (no C++ exception), both from plain C. */
#include <stdio.h>
#include <string.h>

#include <diffblocks/c_api.h>

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
  printf("c_consumer: diffblocks %s, C API OK\n", diffblocks_version_string());
  return 0;
}
