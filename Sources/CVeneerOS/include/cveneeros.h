#ifndef CVENEEROS_H
#define CVENEEROS_H

#include <stdint.h>

/// File-system facts of the file system holding a path (statfs(2)).
/// Returns 0, or -1 with errno set.
int veneer_statfs(const char *path, int64_t *type, int64_t *block_size, int64_t *blocks_available);

#endif
