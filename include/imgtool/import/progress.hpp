// Per-layer progress of a pull on a terminal, in two halves:
//  - render_progress / redraw_frame: pure. The layers' state in, the lines (each fitted to the terminal
//    width, never wrapping) and the bytes that redraw them in place out. Unit-tested.
//  - ProgressDisplay: the thin writer. One thread takes a snapshot of the counters (which the pipeline
//    updates with relaxed atomics) at most 10 times a second, asks the terminal's size (TIOCGWINSZ on
//    the fd, so a resize is followed), and writes the frame. stop() draws the final frame with every
//    layer and leaves it on the terminal as a summary, as docker and podman do.
// The caller decides whether to show progress at all (a terminal, no -q): nothing here checks it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace imgtool::import {

enum class LayerState { Waiting, Unpacking, Done, Exists };

const char* layer_state_name(LayerState state);  // "waiting", "unpacking", "done", "already exists"

struct LayerProgress {
    std::string digest;                  // "sha256:<hex>" (or any "algo:hex"); shown as 12 hex digits
    LayerState state = LayerState::Waiting;
    std::uint64_t done = 0;              // compressed bytes of the blob read so far
    std::optional<std::uint64_t> total;  // the blob's size, when the source states it
    std::optional<double> rate;          // bytes per second, once measurable
};

// "12.3MB", "999B", "1.5GB": decimal units, as docker's progress; at most 7 characters.
std::string progress_size(std::uint64_t bytes);

// One line per layer, in the order given; no line longer than `width` (lines are ASCII, so bytes are
// columns). Fields are dropped as the width shrinks (the bar first, then the rate, the sizes, the
// percentage), and what still does not fit is cut. With more layers than `max_lines`, the layers
// being unpacked come first, then the waiting ones, then the finished, and the last line counts those
// not shown: the line count never exceeds the terminal's height, so cursor-up reaches the first line.
std::vector<std::string> render_progress(const std::vector<LayerProgress>& layers, std::size_t width,
                                         std::size_t max_lines = std::numeric_limits<std::size_t>::max());

// The bytes that replace the `previous` lines drawn last (the cursor is on the line below them) with
// `lines`: cursor-up, then each line after carriage return + erase-line, then erase-below when the
// frame shrank.
std::string redraw_frame(std::size_t previous, const std::vector<std::string>& lines);

class ProgressDisplay {
public:
    using Snapshot = std::function<std::vector<LayerProgress>()>;
    // Starts drawing on `fd` (a terminal) every `period`.
    ProgressDisplay(int fd, Snapshot snapshot, std::chrono::milliseconds period = std::chrono::milliseconds(100));
    ~ProgressDisplay();
    ProgressDisplay(const ProgressDisplay&) = delete;
    ProgressDisplay& operator=(const ProgressDisplay&) = delete;
    // Stops the thread and draws the final frame: every layer, however many (nothing is redrawn after
    // it, so it may scroll).
    void stop();

private:
    void loop();
    void draw(bool final);

    int fd_;
    Snapshot snapshot_;
    std::chrono::milliseconds period_;
    std::size_t drawn_lines_ = 0;
    std::vector<std::string> last_;
    bool stopping_ = false;
    bool stopped_ = false;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::thread thread_;
};

}  // namespace imgtool::import
