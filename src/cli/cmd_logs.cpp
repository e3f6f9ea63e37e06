#include <poll.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "imgtool/core/error.hpp"
#include "imgtool/sys/process.hpp"

namespace imgtool::cli {
namespace {

struct LogsArgs {
    bool follow = false;
    std::string container;
};

// Copies what the log holds from the current offset to stdout.
void copy_available(int log) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(log, buf, sizeof buf)) > 0) {
        if (std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout) != static_cast<std::size_t>(n)) {
            throw_errno("write", "standard output");
        }
    }
    if (n < 0) throw_errno("read", "the container's log");
    std::fflush(stdout);
}

int logs(const Globals& globals, const LogsArgs& a) {
    store::Store store(globals.store_root(), store::Access::Observe);
    store::Store::Container c = store.find_container(a.container);
    if (!c.kept) {
        throw Error(Errc::NotFound, "container " + c.id.substr(0, 12) +
                                        " runs in the foreground: its output goes to its terminal, not to a log (run -d keeps one)");
    }
    sys::UniqueFd log = store.open_container_file(c, "container.log");
    copy_available(log.get());
    if (!a.follow) return 0;
    // -f: until the container ends (then what it wrote last), as docker logs -f.
    while (true) {
        if (c.state == store::Store::ContainerState::Created) {
            ::usleep(100 * 1000);
            c = store.find_container(c.id);
            continue;
        }
        sys::UniqueFd process = c.state == store::Store::ContainerState::Running ? sys::open_process(c.pid, c.start_time)
                                                                                : sys::UniqueFd();
        if (!process) break;
        struct pollfd p {process.get(), POLLIN, 0};
        while (::poll(&p, 1, 200) == 0) copy_available(log.get());
        break;
    }
    copy_available(log.get());
    return 0;
}

}  // namespace

void add_logs(CLI::App& app, Globals& globals, Action& action) {
    auto a = std::make_shared<LogsArgs>();
    CLI::App* cmd = app.add_subcommand("logs", "print the output of a detached container (run -d)");
    examples(*cmd, {"imgtool logs -f web"});
    cmd->add_flag("-f,--follow", a->follow, "keep printing what it writes until it ends");
    cmd->add_option("CONTAINER", a->container, "container name, ID or unique ID prefix")->required();
    cmd->callback([&globals, &action, a] { action = [&globals, a] { return logs(globals, *a); }; });
}

}  // namespace imgtool::cli
