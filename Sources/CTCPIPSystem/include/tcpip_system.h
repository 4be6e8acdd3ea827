// Linux calls that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef TCPIP_SYSTEM_H
#define TCPIP_SYSTEM_H

/// syncfs(2): commits everything written to the file system holding `fd`, in one call. Returns 0 or -1 (errno set).
int tcpip_syncfs(int fd);

#endif
