/* One build of the kernels of _vector_kernels.h, for double and for float, with the
 * vector width FNN_BYTES, the compiler target FNN_TARGET and the name suffix FNN_BUILD
 * that the includer (_vector.h) sets; it unsets them after. */
#define FNN_T double
#define FNN_I long long
#define FNN_NAME(name) FNN_EXPAND_JOIN(name, d, FNN_BUILD)
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#define FNN_T float
#define FNN_I int
#define FNN_NAME(name) FNN_EXPAND_JOIN(name, f, FNN_BUILD)
#include "_vector_kernels.h"
#undef FNN_T
#undef FNN_I
#undef FNN_NAME
#undef FNN_BYTES
#undef FNN_TARGET
#undef FNN_BUILD
