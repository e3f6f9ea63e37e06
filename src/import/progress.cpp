#include "imgtool/import/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace imgtool::import {
namespace {

constexpr std::size_t kIdDigits = 12;  // as docker and podman shorten a layer's digest
constexpr std::size_t kMinBar = 10;    // a narrower bar says nothing the percentage does not
constexpr std::size_t kMaxBar = 30;
constexpr std::size_t kPercentWidth = 4;  // "100%"

std::string short_id(const std::string& digest) {
    std::size_t colon = digest.find(':');
    std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
    return hex.substr(0, kIdDigits);
}

std::string pad_right(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

std::string pad_left(const std::string& s, std::size_t width) {
    return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

// The fields of one line, before they are laid out.
struct Fields {
    std::string id;
    std::string state;
    bool measured = false;  // has sizes; the bar and percentage need `fraction` too
    bool started = false;   // a byte read, or finished
    std::optional<double> fraction;
    std::string sizes;
    std::string percent;
    std::string rate;
};

Fields fields_of(const LayerProgress& layer) {
    Fields f;
    f.id = short_id(layer.digest);
    f.state = layer_state_name(layer.state);
    if (layer.state == LayerState::Exists) return f;
    f.measured = true;
    f.started = layer.done > 0 || layer.state == LayerState::Done;
    if (layer.total) {
        std::uint64_t total = *layer.total;
        // A zero-size blob is complete once done, empty before.
        double fraction = total == 0 ? (layer.state == LayerState::Done ? 1.0 : 0.0)
                                     : std::min(1.0, static_cast<double>(layer.done) / static_cast<double>(total));
        f.fraction = fraction;
        f.sizes = progress_size(layer.done) + "/" + progress_size(total);
        f.percent = std::to_string(static_cast<int>(fraction * 100.0)) + "%";
    } else {
        f.sizes = progress_size(layer.done);
    }
    if (layer.rate && *layer.rate >= 0) f.rate = progress_size(static_cast<std::uint64_t>(*layer.rate)) + "/s";
    return f;
}

// "[=======>      ]": empty before the first byte, full at the end.
std::string bar(double fraction, bool started, std::size_t inner) {
    std::size_t filled = static_cast<std::size_t>(fraction * static_cast<double>(inner));
    std::string out = "[";
    if (!started) {
        out.append(inner, ' ');
    } else if (filled >= inner) {
        out.append(inner, '=');
    } else {
        out.append(filled, '=');
        out += '>';
        out.append(inner - filled - 1, ' ');
    }
    return out + "]";
}

// Which optional columns a frame shows; all lines of a frame show the same, so they stay aligned.
struct Layout {
    bool bar = false;
    bool sizes = false;
    bool percent = false;
    bool rate = false;
    std::size_t bar_inner = 0;
};

std::string summary_line(const std::vector<LayerProgress>& hidden) {
    std::size_t counts[4] = {};
    for (const auto& l : hidden) ++counts[static_cast<int>(l.state)];
    std::string out = "+" + std::to_string(hidden.size()) + " more:";
    const char* names[4] = {"waiting", "unpacking", "done", "already exist"};
    const int order[4] = {1, 0, 2, 3};
    bool first = true;
    for (int i : order) {
        if (counts[i] == 0) continue;
        out += std::string(first ? " " : ", ") + std::to_string(counts[i]) + " " + names[i];
        first = false;
    }
    return out;
}

}  // namespace

const char* layer_state_name(LayerState state) {
    switch (state) {
        case LayerState::Waiting: return "waiting";
        case LayerState::Unpacking: return "unpacking";
        case LayerState::Done: return "done";
        case LayerState::Exists: return "already exists";
    }
    return "?";
}

std::string progress_size(std::uint64_t bytes) {
    static const char* const units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
    char buf[32];
    if (bytes < 1000) {
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
        return buf;
    }
    double value = static_cast<double>(bytes) / 1000.0;
    std::size_t unit = 0;
    // 999.96 kB would print as "1000.0kB": the next unit it is.
    while (value >= 999.95 && unit + 1 < std::size(units)) {
        value /= 1000.0;
        ++unit;
    }
    std::snprintf(buf, sizeof buf, "%.1f%s", value, units[unit]);
    return buf;
}

std::vector<std::string> render_progress(const std::vector<LayerProgress>& all, std::size_t width, std::size_t max_lines) {
    if (max_lines == 0 || width == 0) return {};
    // Which layers get a line, in their own order.
    std::vector<LayerProgress> shown;
    std::vector<LayerProgress> hidden;
    if (all.size() <= max_lines) {
        shown = all;
    } else {
        auto rank = [](LayerState s) { return s == LayerState::Unpacking ? 0 : s == LayerState::Waiting ? 1 : 2; };
        std::vector<std::size_t> order(all.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return rank(all[a].state) < rank(all[b].state); });
        std::vector<bool> pick(all.size(), false);
        for (std::size_t k = 0; k + 1 < max_lines; ++k) pick[order[k]] = true;
        for (std::size_t i = 0; i < all.size(); ++i) (pick[i] ? shown : hidden).push_back(all[i]);
    }

    std::vector<Fields> fields;
    std::size_t id_w = 0, state_w = 0, sizes_w = 0, rate_w = 0;
    bool any_fraction = false;
    for (const auto& l : shown) {
        fields.push_back(fields_of(l));
        const Fields& f = fields.back();
        id_w = std::max(id_w, f.id.size());
        state_w = std::max(state_w, f.state.size());
        sizes_w = std::max(sizes_w, f.sizes.size());
        rate_w = std::max(rate_w, f.rate.size());
        any_fraction = any_fraction || f.fraction.has_value();
    }

    // The widest layout that fits: drop the bar, then the rate, the sizes, the percentage.
    std::size_t base = id_w + 1 + state_w;
    auto length = [&](const Layout& l) {
        std::size_t n = base;
        if (l.bar) n += 1 + l.bar_inner + 2;
        if (l.sizes) n += 1 + sizes_w;
        if (l.percent) n += 1 + kPercentWidth;
        if (l.rate) n += 1 + rate_w;
        return n;
    };
    Layout candidates[] = {
        {.bar = any_fraction, .sizes = sizes_w > 0, .percent = any_fraction, .rate = rate_w > 0, .bar_inner = kMinBar},
        {.bar = false, .sizes = sizes_w > 0, .percent = any_fraction, .rate = rate_w > 0, .bar_inner = 0},
        {.bar = false, .sizes = sizes_w > 0, .percent = any_fraction, .rate = false, .bar_inner = 0},
        {.bar = false, .sizes = false, .percent = any_fraction, .rate = false, .bar_inner = 0},
    };
    Layout layout;  // id and state only, cut if even they do not fit
    for (Layout& c : candidates) {
        if (length(c) <= width) {
            layout = c;
            break;
        }
    }
    if (layout.bar) layout.bar_inner = std::min(kMaxBar, kMinBar + (width - length(layout)));

    std::vector<std::string> lines;
    for (const Fields& f : fields) {
        std::string line = pad_right(f.id, id_w) + " " + pad_right(f.state, state_w);
        if (f.measured) {
            if (layout.bar) line += " " + (f.fraction ? bar(*f.fraction, f.started, layout.bar_inner)
                                                      : std::string(layout.bar_inner + 2, ' '));
            if (layout.sizes) line += " " + pad_left(f.sizes, sizes_w);
            if (layout.percent) line += " " + pad_left(f.percent, kPercentWidth);
            if (layout.rate) line += " " + pad_left(f.rate, rate_w);
        }
        if (line.size() > width) line.resize(width);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        lines.push_back(std::move(line));
    }
    if (!hidden.empty()) {
        std::string line = summary_line(hidden);
        if (line.size() > width) line.resize(width);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        lines.push_back(std::move(line));
    }
    return lines;
}

std::string redraw_frame(std::size_t previous, const std::vector<std::string>& lines) {
    std::string out;
    if (previous > 0) out += "\x1b[" + std::to_string(previous) + "A";
    for (const std::string& line : lines) out += "\r\x1b[K" + line + "\n";
    if (lines.size() < previous) out += "\x1b[J";  // the frame shrank: erase what is left below it
    return out;
}

ProgressDisplay::ProgressDisplay(int fd, Snapshot snapshot, std::chrono::milliseconds period)
    : fd_(fd), snapshot_(std::move(snapshot)), period_(period), thread_([this] { loop(); }) {}

ProgressDisplay::~ProgressDisplay() { stop(); }

void ProgressDisplay::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::lock_guard lock(mutex_);
    draw(true);
    stopped_ = true;
}

void ProgressDisplay::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        draw(false);
        cv_.wait_for(lock, period_, [this] { return stopping_; });
    }
}

void ProgressDisplay::draw(bool final) {
    std::size_t width = 80;
    std::size_t max_lines = std::numeric_limits<std::size_t>::max();
    winsize ws{};
    // Asked every frame, so a resized terminal gets lines that fit it from the next frame on.
    if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col > 0) width = ws.ws_col;
        // One row stays for the cursor below the frame. The final frame is never redrawn: all of it.
        if (!final && ws.ws_row > 1) max_lines = ws.ws_row - 1u;
    }
    std::vector<std::string> lines = render_progress(snapshot_(), width, max_lines);
    if (lines == last_ && (drawn_lines_ > 0 || lines.empty())) return;
    std::string out = redraw_frame(drawn_lines_, lines);
    for (std::size_t off = 0; off < out.size();) {
        ssize_t n = ::write(fd_, out.data() + off, out.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // a terminal gone away: the pull goes on without its display
        off += static_cast<std::size_t>(n);
    }
    drawn_lines_ = lines.size();
    last_ = std::move(lines);
}

}  // namespace imgtool::import
