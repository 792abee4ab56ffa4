#define _GNU_SOURCE
#include "cveneeros.h"

#include <sys/vfs.h>
#include <unistd.h>

int veneer_statfs(const char *path, int64_t *type, int64_t *block_size, int64_t *blocks_available) {
    struct statfs sfs;
    if (statfs(path, &sfs) != 0) {
        return -1;
    }
    *type = (int64_t)sfs.f_type;
    *block_size = (int64_t)sfs.f_bsize;
    *blocks_available = (int64_t)sfs.f_bavail;
    return 0;
}

int veneer_syncfs(int fd) {
    return syncfs(fd);
}
