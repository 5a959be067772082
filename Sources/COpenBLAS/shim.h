#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
// Debian: libopenblas-dev installs cblas.h and openblas_config.h in /usr/include/x86_64-linux-gnu
// (on the default include path); liblapacke-dev installs lapacke.h in /usr/include.
#include <cblas.h>
#include <lapacke.h>
// Declared by OpenBLAS (openblas_config.h/cblas.h); repeated here so the import is explicit.
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif
