// The MPI functions nest-train calls, loaded with dlopen at run time from the Open MPI whose
// launcher started the process: a single process needs no MPI at all, and a bundle carries no
// MPI of its own (Open MPI's library must match the mpirun that starts it).
//
// Open MPI's C ABI (libmpi.so.40, Open MPI 3.0 to 5.x): handles are pointers to the library's
// predefined globals (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`, `MPI_FLOAT` is
// `&ompi_mpi_float`, ...), found here with dlsym; `MPI_IN_PLACE` is (void *)1 and
// `MPI_STATUS_IGNORE` NULL. MPICH-family libraries (MPICH, Intel MPI, MVAPICH) use integer
// handles in another ABI and are refused by name.
#pragma once
#include <stddef.h>

typedef void *nest_MPI_Comm;
typedef void *nest_MPI_Datatype;
typedef void *nest_MPI_Op;
typedef void *nest_MPI_Request;
typedef void nest_MPI_Status;

enum {
    NEST_MPI_SUCCESS = 0,
    NEST_MPI_THREAD_FUNNELED = 1,
    NEST_MPI_MAX_LIBRARY_VERSION_STRING = 256,
};

typedef struct {
    int (*Init_thread)(int *argc, char ***argv, int required, int *provided);
    int (*Finalize)(void);
    int (*Abort)(nest_MPI_Comm comm, int code);
    int (*Get_library_version)(char *version, int *length);
    int (*Comm_rank)(nest_MPI_Comm comm, int *rank);
    int (*Comm_size)(nest_MPI_Comm comm, int *size);
    int (*Comm_dup)(nest_MPI_Comm comm, nest_MPI_Comm *copy);
    int (*Allreduce)(const void *send, void *receive, int count, nest_MPI_Datatype type, nest_MPI_Op op, nest_MPI_Comm comm);
    int (*Iallreduce)(const void *send, void *receive, int count, nest_MPI_Datatype type, nest_MPI_Op op, nest_MPI_Comm comm,
                      nest_MPI_Request *request);
    int (*Bcast)(void *buffer, int count, nest_MPI_Datatype type, int root, nest_MPI_Comm comm);
    int (*Ibarrier)(nest_MPI_Comm comm, nest_MPI_Request *request);
    int (*Test)(nest_MPI_Request *request, int *flag, nest_MPI_Status *status);
    int (*Wait)(nest_MPI_Request *request, nest_MPI_Status *status);
    // Predefined handles.
    nest_MPI_Comm comm_world;
    nest_MPI_Datatype float32, float64, int64, byte;
    nest_MPI_Op sum, max, min;
    nest_MPI_Request request_null;
} nest_mpi;

/// Loads `path` (dlopen with RTLD_GLOBAL: Open MPI's plugins resolve the library's symbols
/// through the global scope) and fills `table`; 0 on success, else 1 with `error` filled.
int nest_mpi_load(const char *path, nest_mpi *table, char *error, size_t errorLength);

/// MPI_IN_PLACE and MPI_STATUS_IGNORE of Open MPI's ABI.
static inline void *nest_mpi_in_place(void) { return (void *)1; }
static inline nest_MPI_Status *nest_mpi_status_ignore(void) { return NULL; }
