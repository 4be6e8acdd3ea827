// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef TCPIP_SYSTEM_H
#define TCPIP_SYSTEM_H

/// syncfs(2): commits everything written to the file system holding `fd`, in one call. Returns 0 or -1 (errno set).
int tcpip_syncfs(int fd);

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE: starts writing a range of `fd` to disk without waiting for it, so a
/// later fsync has less left to do. Returns 0 or -1 (errno set); a no-op returning 0 where it does not exist.
int tcpip_start_writeback(int fd, long long offset, long long length);

/// open(2) with O_TMPFILE: an unnamed regular file in `directory`, opened for writing with `mode`, that vanishes unless
/// it is linked in (linkat through /proc/self/fd). Returns the descriptor or -1 (errno set; EOPNOTSUPP or EISDIR where
/// the file system or kernel has no O_TMPFILE).
int tcpip_open_tmpfile(const char *directory, unsigned int mode);

/// mallopt(3): M_MMAP_THRESHOLD and M_TRIM_THRESHOLD in bytes (malloc.h is not in Swift's Glibc module). A no-op
/// where the C library has no mallopt.
void tcpip_malloc_thresholds(int mmap_threshold, int trim_threshold);

#include <spawn.h>

/// posix_spawn_file_actions_addclosefrom_np(3) (glibc 2.34): the child closes every descriptor from `from` on.
/// Returns 0 or an error number (ENOSYS where the C library lacks it).
int tcpip_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

#endif
