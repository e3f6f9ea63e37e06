// The pull's progress renderer (import/progress.hpp): state in, lines out, for a given width.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "imgtool/import/progress.hpp"

using namespace imgtool::import;

namespace {

const std::string kDigestA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kDigestB = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const std::string kDigestC = "sha256:aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffff";

LayerProgress layer(const std::string& digest, LayerState state, std::uint64_t done, std::optional<std::uint64_t> total,
                    std::optional<double> rate = std::nullopt) {
    return LayerProgress{.digest = digest, .state = state, .done = done, .total = total, .rate = rate};
}

std::vector<LayerProgress> typical() {
    return {layer(kDigestA, LayerState::Done, 40'100'000, 40'100'000, 25'100'000.0),
            layer(kDigestB, LayerState::Unpacking, 12'300'000, 40'100'000, 9'800'000.0),
            layer(kDigestC, LayerState::Waiting, 0, 3'000),
            layer("sha256:1111111111112222222222223333333333334444444444445555555555556666", LayerState::Exists, 0, 123)};
}

void check_fits(const std::vector<std::string>& lines, std::size_t width) {
    for (const auto& line : lines) {
        CHECK_MESSAGE(line.size() <= width, "line longer than " << width << ": \"" << line << "\"");
        CHECK(line.find('\n') == std::string::npos);
        CHECK(line.find('\x1b') == std::string::npos);
        CHECK((line.empty() || line.back() != ' '));
    }
}

}  // namespace

TEST_CASE("progress_size: decimal units, at most 7 characters") {
    CHECK(progress_size(0) == "0B");
    CHECK(progress_size(999) == "999B");
    CHECK(progress_size(1000) == "1.0kB");
    CHECK(progress_size(12'345'678) == "12.3MB");
    CHECK(progress_size(999'949) == "999.9kB");
    CHECK(progress_size(999'999) == "1.0MB");  // never "1000.0kB"
    CHECK(progress_size(5'500'000'000) == "5.5GB");
    CHECK(progress_size(UINT64_MAX).size() <= 7);
}

TEST_CASE("render_progress: one line per layer, digest shortened to 12 digits, in the order given") {
    auto lines = render_progress(typical(), 200);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].rfind("0123456789ab done ", 0) == 0);
    CHECK(lines[1].rfind("fedcba987654 unpacking ", 0) == 0);
    CHECK(lines[2].rfind("aaaaaaaaaaaa waiting ", 0) == 0);
    CHECK(lines[3] == "111111111111 already exists");
    check_fits(lines, 200);
}

TEST_CASE("render_progress: at 80 columns every field, aligned") {
    auto lines = render_progress(typical(), 80);
    check_fits(lines, 80);
    // The bar takes what the other fields leave, up to 30.
    CHECK(lines[0] == "0123456789ab done           [======================] 40.1MB/40.1MB 100% 25.1MB/s");
    CHECK(lines[0].size() == 80);
}

TEST_CASE("render_progress: the widest layout that fits, bar dropped first, then rate, sizes, percentage") {
    auto lines = render_progress(typical(), 200);
    check_fits(lines, 200);
    CHECK(lines[0] == "0123456789ab done           [==============================] 40.1MB/40.1MB 100% 25.1MB/s");
    CHECK(lines[1] == "fedcba987654 unpacking      [=========>                    ] 12.3MB/40.1MB  30%  9.8MB/s");
    CHECK(lines[2] == "aaaaaaaaaaaa waiting        [                              ]      0B/3.0kB   0%");

    lines = render_progress(typical(), 50);
    check_fits(lines, 50);
    CHECK(lines[0] == "0123456789ab done           40.1MB/40.1MB 100%");
    CHECK(lines[1] == "fedcba987654 unpacking      12.3MB/40.1MB  30%");

    lines = render_progress(typical(), 40);
    check_fits(lines, 40);
    CHECK(lines[1] == "fedcba987654 unpacking       30%");

    lines = render_progress(typical(), 20);
    check_fits(lines, 20);
    CHECK(lines[0] == "0123456789ab done");
    CHECK(lines[1] == "fedcba987654 unpacki");  // cut, never wrapped
    CHECK(lines[3] == "111111111111 already");
}

TEST_CASE("render_progress: every width from 0 to 200 fits") {
    for (std::size_t width = 0; width <= 200; ++width) {
        auto lines = render_progress(typical(), width);
        CHECK(lines.size() == (width == 0 ? 0u : 4u));
        check_fits(lines, width);
    }
}

TEST_CASE("render_progress: without the 'already exists' state the state column is narrower") {
    std::vector<LayerProgress> two = {layer(kDigestA, LayerState::Unpacking, 1'000'000, 4'000'000, 2'000'000.0),
                                      layer(kDigestB, LayerState::Done, 500, 500, 100.0)};
    auto lines = render_progress(two, 50);
    check_fits(lines, 50);
    CHECK(lines[0] == "0123456789ab unpacking 1.0MB/4.0MB  25% 2.0MB/s");
    CHECK(lines[1] == "fedcba987654 done        500B/500B 100%  100B/s");
}

TEST_CASE("render_progress: long digests are shortened, odd ones kept whole up to 12 characters") {
    std::string sha512 = "sha512:" + std::string(128, 'e');
    auto lines = render_progress({layer(sha512, LayerState::Waiting, 0, 10), layer("abc", LayerState::Waiting, 0, 10)}, 80);
    CHECK(lines[0].rfind("eeeeeeeeeeee waiting", 0) == 0);
    CHECK(lines[1].rfind("abc          waiting", 0) == 0);
}

TEST_CASE("render_progress: zero-size blobs are 0% until done, then 100%, never a division by zero") {
    auto lines = render_progress({layer(kDigestA, LayerState::Unpacking, 0, 0), layer(kDigestB, LayerState::Done, 0, 0)}, 80);
    check_fits(lines, 80);
    CHECK(lines[0].find("0B/0B   0%") != std::string::npos);
    CHECK(lines[1].find("0B/0B 100%") != std::string::npos);
    CHECK(lines[1].find("[==========") != std::string::npos);
}

TEST_CASE("render_progress: unknown totals show the bytes done, no bar and no percentage") {
    std::vector<LayerProgress> layers = {layer(kDigestA, LayerState::Unpacking, 2'500'000, std::nullopt, 1'000'000.0),
                                         layer(kDigestB, LayerState::Unpacking, 1'000, 2'000)};
    auto lines = render_progress(layers, 200);
    check_fits(lines, 200);
    CHECK(lines[0].find('[') == std::string::npos);
    CHECK(lines[0].find('%') == std::string::npos);
    CHECK(lines[0].find("2.5MB") != std::string::npos);
    CHECK(lines[0].find("1.0MB/s") != std::string::npos);
    CHECK(lines[1].find("50%") != std::string::npos);
    // Alone, the unknown total drops the bar and percentage columns altogether.
    lines = render_progress({layers[0]}, 200);
    CHECK(lines[0] == "0123456789ab unpacking 2.5MB 1.0MB/s");
    // More read than stated: the display stays at 100% (the size check fails the pull).
    lines = render_progress({layer(kDigestA, LayerState::Unpacking, 9'000, 1'000)}, 200);
    CHECK(lines[0].find("100%") != std::string::npos);
}

TEST_CASE("render_progress: more layers than lines: the busy ones, then a count of the rest") {
    std::vector<LayerProgress> many;
    for (int i = 0; i < 10; ++i) {
        std::string digest = "sha256:" + std::string(11, 'a') + std::to_string(i) + std::string(52, '0');
        LayerState state = i < 6 ? LayerState::Done : i == 8 ? LayerState::Unpacking : LayerState::Waiting;
        many.push_back(layer(digest, state, 0, 100));
    }
    auto lines = render_progress(many, 60, 4);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].rfind("aaaaaaaaaaa6 done", 0) != 0);
    CHECK(lines[0].rfind("aaaaaaaaaaa6 waiting", 0) == 0);  // waiting and unpacking first, in order
    CHECK(lines[1].rfind("aaaaaaaaaaa7 waiting", 0) == 0);
    CHECK(lines[2].rfind("aaaaaaaaaaa8 unpacking", 0) == 0);
    CHECK(lines[3] == "+7 more: 1 waiting, 6 done");
    CHECK(render_progress(many, 60, 1) == std::vector<std::string>{"+10 more: 1 unpacking, 3 waiting, 6 done"});
    CHECK(render_progress(many, 10, 1) == std::vector<std::string>{"+10 more:"});
    CHECK(render_progress(many, 60, 0).empty());
    CHECK(render_progress(many, 60, 10).size() == 10);
}

TEST_CASE("redraw_frame: cursor-up over the last frame, erase each line, erase below when it shrank") {
    CHECK(redraw_frame(0, {"a", "b"}) == "\r\x1b[Ka\n\r\x1b[Kb\n");
    CHECK(redraw_frame(2, {"c", "d"}) == "\x1b[2A\r\x1b[Kc\n\r\x1b[Kd\n");
    CHECK(redraw_frame(3, {"e"}) == "\x1b[3A\r\x1b[Ke\n\x1b[J");
    CHECK(redraw_frame(0, {}).empty());
}
