// One cblas_sgemm 4096×512 · (2048×512)ᵀ on one thread, best of 5, printing the kernel OpenBLAS
// runs: BENCHMARKS.md's kernel table, one run per forced OPENBLAS_CORETYPE (`make bench-kernels`).
// Not part of nest-train.
#include <stdio.h>
#include <cblas.h>
#include <stdlib.h>
#include <time.h>
int main(){ printf("%s | %s\n", openblas_get_corename(), openblas_get_config());
 openblas_set_num_threads(1);
 int m=4096,n=2048,k=512; float*a=malloc(4L*m*k),*b=malloc(4L*k*n),*c=malloc(4L*m*n);
 for(long i=0;i<(long)m*k;i++)a[i]=(i%7)*0.1f; for(long i=0;i<(long)k*n;i++)b[i]=(i%5)*0.1f;
 double best=1e9; for(int r=0;r<5;r++){struct timespec t0,t1;clock_gettime(CLOCK_MONOTONIC,&t0);
 cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,m,n,k,1,a,k,b,k,0,c,n);
 clock_gettime(CLOCK_MONOTONIC,&t1); double s=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)*1e-9; if(s<best)best=s;}
 printf("%.1f GFLOP/s\n", 2.0*m*n*k/best/1e9);}
