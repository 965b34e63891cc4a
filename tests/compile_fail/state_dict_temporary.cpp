// Compile-fail test (tests/CMakeLists.txt): a StateDict made from a temporary SafeTensors must not
// compile (it would keep a view into the destroyed file). Built twice: with
// DIFFBLOCKS_COMPILE_FAIL_CONTROL the legal form, which must compile (so the failure below is
// the one meant, not a broken include path), and without it, which must fail naming the
// deleted constructor.
#include "diffblocks/diffblocks.hpp"

int main(int argc, char** argv) {
  namespace db = diffblocks;
  if (argc < 2) return 2;
#ifdef DIFFBLOCKS_COMPILE_FAIL_CONTROL
  const auto file = db::SafeTensors::load(argv[1]);
  db::StateDict sd(file);
#else
  db::StateDict sd(db::SafeTensors::load(argv[1]));
#endif
  return static_cast<int>(sd.size());
}
