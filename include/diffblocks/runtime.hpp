#pragma once
// The run-time entry (runtime/model.hpp): load a model by path on a device named at run time
// ("cpu", "cuda"), then forward, sample and describe it on plain host tensors. For programs that
// choose the device at run time (the diffblocks CLI, bindings); code that fixes its device at
// compile time uses the templates directly (diffblocks.hpp, cuda.hpp).
#include "diffblocks/runtime/model.hpp"
