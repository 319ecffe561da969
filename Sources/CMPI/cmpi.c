#include "cmpi.h"
#include <dlfcn.h>
#include <stdio.h>

static int resolve(void *library, void **slot, const char *name, char *error, size_t errorLength) {
    *slot = dlsym(library, name);
    if (*slot) return 0;
    snprintf(error, errorLength, "symbol %s not found (not Open MPI's ABI?)", name);
    return 1;
}

#define RESOLVE(field, name) do { if (resolve(library, (void **)&table->field, name, error, errorLength)) return 1; } while (0)

int nest_mpi_load(const char *path, nest_mpi *table, char *error, size_t errorLength) {
    void *library = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!library) {
        snprintf(error, errorLength, "%s", dlerror());
        return 1;
    }
    RESOLVE(Init_thread, "MPI_Init_thread");
    RESOLVE(Finalize, "MPI_Finalize");
    RESOLVE(Abort, "MPI_Abort");
    RESOLVE(Get_library_version, "MPI_Get_library_version");
    RESOLVE(Comm_rank, "MPI_Comm_rank");
    RESOLVE(Comm_size, "MPI_Comm_size");
    RESOLVE(Comm_dup, "MPI_Comm_dup");
    RESOLVE(Allreduce, "MPI_Allreduce");
    RESOLVE(Iallreduce, "MPI_Iallreduce");
    RESOLVE(Bcast, "MPI_Bcast");
    RESOLVE(Ibarrier, "MPI_Ibarrier");
    RESOLVE(Test, "MPI_Test");
    RESOLVE(Wait, "MPI_Wait");
    RESOLVE(comm_world, "ompi_mpi_comm_world");
    RESOLVE(float32, "ompi_mpi_float");
    RESOLVE(float64, "ompi_mpi_double");
    RESOLVE(int64, "ompi_mpi_int64_t");
    RESOLVE(byte, "ompi_mpi_byte");
    RESOLVE(sum, "ompi_mpi_op_sum");
    RESOLVE(max, "ompi_mpi_op_max");
    RESOLVE(min, "ompi_mpi_op_min");
    RESOLVE(request_null, "ompi_request_null");
    return 0;
}
