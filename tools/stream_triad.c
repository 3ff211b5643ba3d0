/* A STREAM-style triad, the C reference for `tandem bench --bandwidth`: a[i] = b[i] + s * c[i] over
 * three arrays far larger than the caches, OpenMP threads, best of 10 passes. Reported as STREAM
 * reports it: 3 arrays x 8 bytes per element per pass (the write-allocate read of `a` is not counted).
 * Build and run: scripts/stream-triad [threads] (gcc -O3 -march=native -fopenmp). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)1 << 26; /* 512 MiB per array */
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }
    double best = 1e30, s = 3.0;
    for (int rep = 0; rep < 10; rep++) {
        double t = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        t = omp_get_wtime() - t;
        if (t < best) best = t;
    }
    double check = 0;
    for (size_t i = 0; i < n; i += n / 16) check += a[i];
    printf("triad: %.1f GB/s (%d threads, %zu MiB per array, best of 10; check %.1f)\n",
           3.0 * n * sizeof(double) / best / 1e9, omp_get_max_threads(), n * sizeof(double) >> 20, check);
    free(a);
    free(b);
    free(c);
    return 0;
}
