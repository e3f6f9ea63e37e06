// Paths that root receives from users (mount targets, --upper directories): opened the way the caller
// would reach them, except that a symlink is followed only when it is owned by root or the caller, so
// a path another user controls can never lead root elsewhere (an `imgtool mount` onto /etc through a
// user's symlink). The result is an open fd: what is then mounted or written is exactly what was
// checked, whatever happens to the path afterwards.
#pragma once

#include <string>

#include "imgtool/sys/unique_fd.hpp"

namespace imgtool::sys {

struct UserPath {
    UniqueFd fd;           // the final directory, opened with the flags asked for (never through a symlink)
    UniqueFd parent;       // the directory holding it (O_PATH)
    std::string name;      // its name in `parent`
    std::string resolved;  // absolute, symlinks resolved (for records and messages)
    // Some directory on the way (or the final one) is owned by root or the caller and denies other
    // users' search: nobody else can reach what is inside.
    bool private_to_caller = false;
};

// `path` absolute or relative to the working directory; `flags` for the final directory (O_DIRECTORY
// is added). `create_missing`: a missing final component is made (mode 0755). Throws imgtool::Error:
// UnsafePath naming a symlink owned by someone else, or the errno of the failing step.
UserPath open_user_directory(const std::string& path, int flags, bool create_missing = false);

}  // namespace imgtool::sys
