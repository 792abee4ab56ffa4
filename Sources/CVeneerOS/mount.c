#define _GNU_SOURCE
#include "cveneeros.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// The numbers of these calls are the same on every architecture that has them
// (they were added after the system call tables were unified).
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

int veneer_fsopen(const char *fs_name, unsigned int flags) {
    return (int)syscall(SYS_fsopen, fs_name, flags);
}

int veneer_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

int veneer_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

int veneer_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}

// Layout of struct open_how (linux/openat2.h), version 0.
struct veneer_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int veneer_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct veneer_open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int veneer_is_mount_root(const char *path) {
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) != 0) {
        return -1;
    }
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) {
        return -2;
    }
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

int veneer_mount_id(const char *path, uint64_t *mount_id) {
    // stx_mnt_id sits at byte 144 of the kernel's 256-byte struct statx; older C
    // library headers do not name that field, so it is read by its offset.
    union {
        struct statx stx;
        unsigned char bytes[256];
    } buffer;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID, &buffer.stx) != 0) {
        return -1;
    }
    if (!(buffer.stx.stx_mask & STATX_MNT_ID)) {
        return -2;
    }
    memcpy(mount_id, buffer.bytes + 144, sizeof(*mount_id));
    return 0;
}

int veneer_statx_mount(int dirfd, const char *path, int flags, uint64_t *mount_id, uint32_t *dev_major,
                       uint32_t *dev_minor, int *mount_root) {
    union {
        struct statx stx;
        unsigned char bytes[256];
    } buffer;
    if (statx(dirfd, path, flags | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID, &buffer.stx) != 0) {
        return -1;
    }
    if (!(buffer.stx.stx_mask & STATX_MNT_ID)) {
        return -2;
    }
    memcpy(mount_id, buffer.bytes + 144, sizeof(*mount_id));
    *dev_major = buffer.stx.stx_dev_major;
    *dev_minor = buffer.stx.stx_dev_minor;
    *mount_root = (buffer.stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
        ? ((buffer.stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0)
        : -1;
    return 0;
}

struct veneer_mount_job {
    const char *directory;
    const char *source;
    const char *target;
    const char *fstype;
    unsigned long flags;
    const char *data;
    int result;
    int error;
};

static void *veneer_mount_job_run(void *argument) {
    struct veneer_mount_job *job = argument;
    // A private fs_struct: chdir below affects this thread only.
    if (unshare(CLONE_FS) != 0 || chdir(job->directory) != 0) {
        job->result = -1;
        job->error = errno;
        return NULL;
    }
    job->result = mount(job->source, job->target, job->fstype, job->flags, job->data);
    job->error = job->result == 0 ? 0 : errno;
    return NULL;
}

int veneer_mount_in_directory(const char *directory, const char *source, const char *target,
                              const char *fstype, unsigned long flags, const char *data) {
    struct veneer_mount_job job = {
        .directory = directory, .source = source, .target = target,
        .fstype = fstype, .flags = flags, .data = data, .result = -1, .error = 0,
    };
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, veneer_mount_job_run, &job);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    rc = pthread_join(thread, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    if (job.result != 0) {
        errno = job.error;
        return -1;
    }
    return 0;
}

int veneer_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data) {
    return mount(source, target, fstype, flags, data);
}

int veneer_umount(const char *target, int flags) {
    return umount2(target, flags);
}

int veneer_rename_exchange(const char *a, const char *b) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, VENEER_RENAME_EXCHANGE);
}
