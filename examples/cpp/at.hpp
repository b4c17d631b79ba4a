// at.hpp: a small header-only C++17 wrapper over libat's C API, for the C++
// host example. It is not part of the library (the ABI is the C header's);
// copy it into a project and adapt it.
//
// - libat::config and libat::model own their handles (move-only, like
//   std::unique_ptr) and free them in the destructor;
// - a failing call throws libat::error, which carries the at_status and the
//   message of at_errmsg();
// - libat::view is a span-like, non-owning window on a tensor the library
//   lends out (no copy): operator() reads an element without checks, at()
//   checks the indices and that the view is still current, and throws
//   libat::stale_view after the model's next pass.
#ifndef LIBAT_AT_HPP
#define LIBAT_AT_HPP

#include <at.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace libat {

/// A failed libat call: what at_errmsg() said, and the status.
class error : public std::runtime_error {
public:
    error(at_status s, const std::string &what)
        : std::runtime_error(what + " (" + at_status_string(s) + ")"), status_(s) {}
    at_status status() const noexcept { return status_; }

private:
    at_status status_;
};

/// A view used after its model recomputed the memory it points at.
class stale_view : public error {
public:
    explicit stale_view(const std::string &what) : error(AT_E_STATE, what) {}
};

namespace detail {
struct config_free {
    void operator()(at_config *c) const noexcept { at_config_free(c); }
};
struct model_free {
    void operator()(at_model *m) const noexcept { at_model_free(m); }
};
/// Throws for a failed status; m is the model whose message to report, or
/// nullptr for calls that report through at_errmsg(NULL).
inline void check(at_status s, const at_model *m) {
    if (s != AT_OK)
        throw error(s, at_errmsg(m));
}
} // namespace detail

/// Hyperparameters (at_config): the reference defaults, then set().
class config {
public:
    config() {
        at_config *c = nullptr;
        detail::check(at_config_create(&c), nullptr);
        p_.reset(c);
    }
    config &set(at_param key, double value) {
        detail::check(at_config_set(p_.get(), key, value), nullptr);
        return *this;
    }
    double get(at_param key) const {
        double v = 0;
        detail::check(at_config_get(p_.get(), key, &v), nullptr);
        return v;
    }
    const at_config *handle() const noexcept { return p_.get(); }

private:
    std::unique_ptr<at_config, detail::config_free> p_;
};

/// A read-only window on library memory (at_view): no copy, no ownership.
class view {
public:
    view(const at_view &v, const at_model *owner, bool tracks) noexcept
        : v_(v), owner_(owner), tracks_(tracks) {}

    const float *data() const noexcept { return v_.data; }
    int ndim() const noexcept { return v_.ndim; }
    std::int64_t extent(int d) const noexcept { return v_.shape[d]; }
    std::int64_t stride(int d) const noexcept { return v_.stride[d]; }   // in elements
    std::int64_t size() const noexcept {
        std::int64_t n = 1;
        for (int d = 0; d < v_.ndim; d++)
            n *= v_.shape[d];
        return n;
    }
    std::uint64_t generation() const noexcept { return v_.generation; }

    /// Whether the memory still holds what the view was made for.
    bool current() const noexcept {
        return !tracks_ || v_.generation == at_model_generation(owner_);
    }

    /// Element (i0, i1, i2, i3), unchecked (trailing indices default to 0).
    float operator()(std::int64_t i0, std::int64_t i1 = 0, std::int64_t i2 = 0,
                     std::int64_t i3 = 0) const noexcept {
        return v_.data[i0 * v_.stride[0] + i1 * v_.stride[1] + i2 * v_.stride[2] +
                       i3 * v_.stride[3]];
    }

    /// Element (i0, i1, i2, i3), checked: throws stale_view after the
    /// model's next pass, std::out_of_range for an index outside the shape.
    float at(std::int64_t i0, std::int64_t i1 = 0, std::int64_t i2 = 0,
             std::int64_t i3 = 0) const {
        if (!current())
            throw stale_view("libat view used after the model's next pass (generation " +
                             std::to_string(at_model_generation(owner_)) + ", view " +
                             std::to_string(v_.generation) + ")");
        const std::int64_t i[4] = {i0, i1, i2, i3};
        for (int d = 0; d < 4; d++)
            if (i[d] < 0 || i[d] >= v_.shape[d])
                throw std::out_of_range("libat view index out of range");
        return (*this)(i0, i1, i2, i3);
    }

    /// A copy, row-major, that outlives the view.
    std::vector<float> copy() const {
        std::vector<float> out;
        out.reserve(static_cast<std::size_t>(size()));
        for (std::int64_t a = 0; a < v_.shape[0]; a++)
            for (std::int64_t b = 0; b < v_.shape[1]; b++)
                for (std::int64_t c = 0; c < v_.shape[2]; c++)
                    for (std::int64_t d = 0; d < v_.shape[3]; d++)
                        out.push_back((*this)(a, b, c, d));
        return out;
    }

private:
    at_view v_;
    const at_model *owner_;
    bool tracks_;
};

/// Token ids of a batch: rows × cols, row-major, borrowed.
struct ids {
    const std::int32_t *data;
    int rows, cols;
    ids(const std::vector<std::int32_t> &v, int rows_)
        : data(v.data()), rows(rows_), cols(rows_ > 0 ? static_cast<int>(v.size()) / rows_ : 0) {
        if (rows_ <= 0 || v.size() % static_cast<std::size_t>(rows_) != 0)
            throw std::invalid_argument("libat::ids: size is not a multiple of the rows");
    }
};

/// A model (at_model): owns its parameters, activations and views' memory.
class model {
public:
    explicit model(const config &c = config()) {
        at_model *m = nullptr;
        detail::check(at_model_create(c.handle(), &m), nullptr);
        p_.reset(m);
    }
    static model load(const std::string &path, const config *hint = nullptr) {
        at_model *m = nullptr;
        detail::check(at_model_load(path.c_str(), hint ? hint->handle() : nullptr, &m), nullptr);
        return model(m);
    }

    /// A second handle on the same weights, for another thread.
    model share() {
        at_model *m = nullptr;
        check(at_model_share(p_.get(), &m));
        return model(m);
    }

    void save(const std::string &path) { check(at_model_save(p_.get(), path.c_str())); }
    void set(at_param key, double value) { check(at_model_set(p_.get(), key, value)); }
    double get(at_param key) const {
        double v = 0;
        check(at_model_get(p_.get(), key, &v));
        return v;
    }

    void forward(const ids &src, const ids &tgt, std::int32_t pad) {
        if (src.rows != tgt.rows)
            throw std::invalid_argument("libat::model::forward: src and tgt rows differ");
        check(at_forward(p_.get(), src.data, tgt.data, src.rows, src.cols, tgt.cols, pad));
    }

    /// Greedy decoding: rows × n ids (n ≤ max_len), the start id first.
    std::vector<std::int32_t> greedy_decode(const ids &src, std::int32_t pad, int max_len,
                                            std::int32_t start, std::int32_t end, int *n) {
        std::vector<std::int32_t> out(static_cast<std::size_t>(src.rows) * max_len);
        check(at_greedy_decode(p_.get(), src.data, src.rows, src.cols, pad, max_len, start, end,
                               out.data(), n));
        return out;
    }

    /// One training step on the full target Y; returns (loss, tokens).
    std::pair<float, std::int64_t> train_step(const ids &src, const ids &y, std::int32_t pad) {
        float loss = 0;
        std::int64_t n = 0;
        check(at_train_step(p_.get(), src.data, y.data, src.rows, src.cols, y.cols, pad, &loss,
                            &n));
        return {loss, n};
    }

    std::pair<float, std::int64_t> eval_loss(const ids &src, const ids &y, std::int32_t pad) {
        float loss = 0;
        std::int64_t n = 0;
        check(at_eval_loss(p_.get(), src.data, y.data, src.rows, src.cols, y.cols, pad, &loss,
                           &n));
        return {loss, n};
    }

    view attention(at_attn_kind kind, int layer) {
        at_view v;
        check(at_get_attention(p_.get(), kind, layer, &v));
        return view(v, p_.get(), true);
    }
    view output(at_output which, int layer = 0) {
        at_view v;
        check(at_get_output(p_.get(), which, layer, &v));
        return view(v, p_.get(), true);
    }
    /// A parameter: its view lives as long as the model.
    view tensor(const std::string &name) {
        at_view v;
        check(at_model_find_tensor(p_.get(), name.c_str(), &v));
        return view(v, p_.get(), false);
    }

    std::uint64_t generation() const noexcept { return at_model_generation(p_.get()); }
    std::uint64_t steps() const noexcept { return at_model_steps(p_.get()); }
    at_model *handle() const noexcept { return p_.get(); }

private:
    explicit model(at_model *m) noexcept : p_(m) {}
    void check(at_status s) const { detail::check(s, p_.get()); }
    std::unique_ptr<at_model, detail::model_free> p_;
};

} // namespace libat

#endif // LIBAT_AT_HPP
