#define _GNU_SOURCE
#include <unistd.h>
#include "tcpip_system.h"

int tcpip_syncfs(int fd) {
#ifdef __linux__
    return syncfs(fd);
#else
    return fsync(fd);
#endif
}
