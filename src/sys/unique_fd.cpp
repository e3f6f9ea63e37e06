#include "imgtool/sys/unique_fd.hpp"

#include <unistd.h>

namespace imgtool::sys {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

}  // namespace imgtool::sys
