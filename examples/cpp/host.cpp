// A C++ host of libat through the RAII wrapper at.hpp: train the copy task
// for a few steps, read attention through views, run shared handles in two
// threads, and see the errors the wrapper throws. Exits non-zero if anything
// is not as expected (it runs as a test).
#include "at.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "cpp_host: FAILED: %s\n", what);
        failures++;
    }
}

// The copy task's batches: ids 1..10, column 0 the start symbol 1, pad 0.
std::vector<std::int32_t> copy_batch(std::mt19937 &rng, int rows, int len) {
    std::uniform_int_distribution<std::int32_t> id(1, 10);
    std::vector<std::int32_t> y(static_cast<std::size_t>(rows) * len);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < len; i++)
            y[static_cast<std::size_t>(r) * len + i] = i == 0 ? 1 : id(rng);
    return y;
}

} // namespace

int main() {
    try {
        libat::config cfg;
        cfg.set(AT_P_LAYERS, 2)
            .set(AT_P_D_MODEL, 32)
            .set(AT_P_HEADS, 4)
            .set(AT_P_D_FF, 64)
            .set(AT_P_LR, 1)
            .set(AT_P_WARMUP, 50);
        libat::model m(cfg);   // freed by its destructor, on every path

        // Training: the full target Y, the library shifts it itself.
        std::mt19937 rng(1);
        const int B = 32, L = 10;
        std::pair<float, std::int64_t> first{}, last{};
        for (int step = 0; step < 60; step++) {
            auto y = copy_batch(rng, B, L);
            last = m.train_step({y, B}, {y, B}, 0);
            if (step == 0)
                first = last;
        }
        std::printf("copy task: loss %.3f after 1 step, %.3f after %llu\n", first.first,
                    last.first, static_cast<unsigned long long>(m.steps()));
        expect(last.first < first.first, "the loss goes down");

        // A forward pass and a zero-copy view of layer 2's cross-attention.
        std::vector<std::int32_t> src = {1, 4, 2, 7, 3, 0}, tgt = {1, 4, 2, 7};
        m.forward({src, 1}, {tgt, 1}, 0);
        libat::view cross = m.attention(AT_ATTN_CROSS, 1);   // (batch, head, target, source)
        expect(cross.ndim() == 4 && cross.extent(1) == 4 && cross.extent(2) == 4 &&
                   cross.extent(3) == 6,
               "cross-attention shape (1, 4, 4, 6)");
        double row = 0;
        for (std::int64_t k = 0; k < cross.extent(3); k++)
            row += cross(0, 2, 3, k);
        expect(std::fabs(row - 1.0) < 1e-5, "a row of attention sums to 1");
        expect(cross.at(0, 2, 3, 5) == 0.0f, "the padded key has weight 0");
        std::printf("head 3, target 4 attends to source 1..6:");
        for (std::int64_t k = 0; k < cross.extent(3); k++)
            std::printf(" %.3f", cross.at(0, 2, 3, k));
        std::printf("\n");
        std::vector<float> kept = cross.copy();

        // The next pass ends the view: at() throws instead of reading reused memory.
        m.forward({src, 1}, {tgt, 1}, 0);
        expect(!cross.current(), "the view is stale after the next pass");
        bool threw = false;
        try {
            (void)cross.at(0, 0, 0, 0);
        } catch (const libat::stale_view &e) {
            threw = true;
            std::printf("stale view: %s\n", e.what());
        }
        expect(threw, "at() on a stale view throws libat::stale_view");
        expect(m.attention(AT_ATTN_CROSS, 1).copy() == kept, "same input, same attention");

        // Shared weights, two threads, one handle each: the same answers.
        m.forward({src, 1}, {tgt, 1}, 0);
        std::vector<float> want = m.output(AT_OUT_LOGPROBS).copy();
        std::vector<libat::model> handles;
        handles.push_back(m.share());
        handles.push_back(m.share());
        std::vector<std::vector<float>> got(2);
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; t++)
            threads.emplace_back([&, t] {
                for (int pass = 0; pass < 20; pass++)
                    handles[t].forward({src, 1}, {tgt, 1}, 0);
                got[t] = handles[t].output(AT_OUT_LOGPROBS).copy();
            });
        for (auto &th : threads)
            th.join();
        expect(got[0] == want && got[1] == want, "shared handles in threads agree");
        expect(handles[0].tensor("generator.proj.weight").data() ==
                   m.tensor("generator.proj.weight").data(),
               "shared handles share the weights");

        // Errors are exceptions with the library's message.
        try {
            auto y = copy_batch(rng, 2, L);
            m.train_step({y, 2}, {y, 2}, 0);   // weights shared: refused
            expect(false, "training shared weights throws");
        } catch (const libat::error &e) {
            expect(e.status() == AT_E_STATE, "AT_E_STATE while shared");
            std::printf("expected error: %s\n", e.what());
        }
        handles.clear();   // the other handles go; training works again
        auto y = copy_batch(rng, 2, L);
        m.train_step({y, 2}, {y, 2}, 0);
        try {
            std::vector<std::int32_t> bad = {1, 42};
            m.forward({bad, 1}, {tgt, 1}, 0);
            expect(false, "an id outside the vocabulary throws");
        } catch (const libat::error &e) {
            expect(e.status() == AT_E_RANGE, "AT_E_RANGE for an id outside the vocabulary");
            std::printf("expected error: %s\n", e.what());
        }
        try {
            libat::model::load("/nonexistent.safetensors");
            expect(false, "loading a missing file throws");
        } catch (const libat::error &e) {
            expect(e.status() == AT_E_IO, "AT_E_IO for a missing file");
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_host: unexpected exception: %s\n", e.what());
        return 1;
    }
    if (failures)
        return 1;
    std::printf("cpp_host: all checks passed\n");
    return 0;
}
