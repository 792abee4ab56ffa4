#ifndef CVENEEROS_H
#define CVENEEROS_H

#include <sys/xattr.h>
#include <stddef.h>
#include <stdint.h>

/// File-system facts of the file system holding a path (statfs(2)).
/// Returns 0, or -1 with errno set.
int veneer_statfs(const char *path, int64_t *type, int64_t *block_size, int64_t *blocks_available);

// Constants of the mount and path-resolution system calls, spelled out here so that
// callers need neither <linux/mount.h> (which clashes with <sys/mount.h> on some
// C libraries) nor a C library new enough to declare them.
enum {
    VENEER_O_PATH = 010000000,
    VENEER_FSOPEN_CLOEXEC = 0x1,
    VENEER_FSMOUNT_CLOEXEC = 0x1,
    VENEER_FSCONFIG_SET_FLAG = 0,
    VENEER_FSCONFIG_SET_STRING = 1,
    VENEER_FSCONFIG_CMD_CREATE = 6,
    VENEER_MOUNT_ATTR_RDONLY = 0x1,
    VENEER_MOVE_MOUNT_F_EMPTY_PATH = 0x4,
    VENEER_MOVE_MOUNT_T_EMPTY_PATH = 0x40,
    VENEER_RESOLVE_NO_XDEV = 0x01,
    VENEER_RESOLVE_NO_MAGICLINKS = 0x02,
    VENEER_RESOLVE_NO_SYMLINKS = 0x04,
    VENEER_AT_EMPTY_PATH = 0x1000,
    VENEER_RENAME_EXCHANGE = 0x2,
};

// Thin wrappers over the new mount API (Linux 5.2). Each returns what the system
// call returns: a file descriptor or 0, or -1 with errno set (ENOSYS when the
// kernel lacks the call).
int veneer_fsopen(const char *fs_name, unsigned int flags);
int veneer_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
int veneer_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
int veneer_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags);

/// openat2(2) (Linux 5.6): returns a file descriptor, or -1 with errno set.
int veneer_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// Whether `path` (not following a final symbolic link) is the root of a mount,
/// from statx(2)'s STATX_ATTR_MOUNT_ROOT. Returns 1 or 0, -1 with errno set on
/// failure, and -2 when the kernel does not report the attribute.
int veneer_is_mount_root(const char *path);

/// The id of the mount that holds `path` (not following a final symbolic link), as
/// /proc/self/mountinfo numbers mounts, from statx(2)'s STATX_MNT_ID (Linux 5.8).
/// Returns 0, -1 with errno set on failure, and -2 when the kernel does not report it.
int veneer_mount_id(const char *path, uint64_t *mount_id);

/// What statx(2) says of the mount that holds `path` relative to `dirfd` (with
/// `flags`, e.g. AT_EMPTY_PATH for the descriptor itself): its id (STATX_MNT_ID, as
/// /proc/self/mountinfo numbers mounts), the device of its file system and whether
/// the path is the mount's root. Returns 0, -1 with errno set on failure, and -2 when
/// the kernel reports no mount id.
int veneer_statx_mount(int dirfd, const char *path, int flags, uint64_t *mount_id, uint32_t *dev_major,
                       uint32_t *dev_minor, int *mount_root);

/// mount(2) performed on a new thread whose working directory (unshared from the
/// rest of the process with CLONE_FS) is `directory`, so that relative paths in
/// `source`, `target` and `data` resolve against it without touching the working
/// directory of the other threads. Returns 0, or -1 with errno set.
int veneer_mount_in_directory(const char *directory, const char *source, const char *target,
                              const char *fstype, unsigned long flags, const char *data);

/// mount(2) as is. Returns 0, or -1 with errno set.
int veneer_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data);

/// renameat2(2) with RENAME_EXCHANGE: swaps two paths atomically. Returns 0, or -1
/// with errno set.
int veneer_rename_exchange(const char *a, const char *b);

/// umount2(2). Returns 0, or -1 with errno set.
int veneer_umount(const char *target, int flags);

/// Writes the file system holding `fd` to its disk (syncfs(2), a GNU extension).
/// Returns 0, or -1 with errno set.
int veneer_syncfs(int fd);

#endif
