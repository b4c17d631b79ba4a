// The SentencePiece tokenizer of libat_text (at_tokenizer_*, include/at_text.h).
//
// C++17 behind the C ABI: every exported function catches every exception
// (std::bad_alloc becomes AT_E_NOMEM, anything else a status with a message)
// so that none crosses into the C caller; SentencePiece's util::Status
// results become at_status codes with its message in at_text_errmsg().
// Training reads the files itself (regular files only, strict UTF-8, the
// message names the file and line) and hands the lines to the trainer
// through a SentenceIterator; the model is kept as a serialized ModelProto
// (what at_tokenizer_serialize returns) and loaded into a
// SentencePieceProcessor. The trainer's log (INFO lines on stderr) is
// silenced for the duration of a training under a lock.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "at_text.h"

extern "C" {
#include "io/fileio.h"
// common.c (text_internal.h includes <stdatomic.h>, which C++17 lacks).
at_status text_fail(at_status s, const char *fmt, ...);
size_t utf8_invalid_at(const unsigned char *s, size_t n);
char *base64_encode(const unsigned char *p, size_t n, size_t *out_len);   // base64.c
size_t base64_decode(const char *s, size_t n, unsigned char *out);
}

// Not in the public headers of SentencePiece 0.1.x, but exported by
// libsentencepiece.so (sentencepiece/src/common.h).
namespace sentencepiece {
namespace logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace logging
}  // namespace sentencepiece

struct at_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string proto;                     // the serialized ModelProto
    std::atomic_flag busy = ATOMIC_FLAG_INIT;
    std::vector<int32_t> ids;              // at_tokenizer_encode's result
    std::vector<std::string> pieces;       // at_tokenizer_encode_pieces's
    std::vector<const char *> piece_ptrs;
    std::string text;                      // at_tokenizer_decode's
    std::string base64;                    // at_tokenizer_to_base64's, made once
};

namespace {

std::mutex log_lock;

// other: the code of SentencePiece's internal errors (a failed check: what
// the caller asked for cannot be done, e.g. a vocabulary too large).
at_status from_spm(const sentencepiece::util::Status &st, const char *who,
                   at_status other = AT_E_FORMAT)
{
    using sentencepiece::util::StatusCode;
    at_status s;
    switch (st.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
        s = AT_E_ARG;
        break;
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied:
        s = AT_E_IO;
        break;
    case StatusCode::kOutOfRange:
        s = AT_E_RANGE;
        break;
    case StatusCode::kResourceExhausted:
        s = AT_E_NOMEM;
        break;
    default:
        s = other;
        break;
    }
    return text_fail(s, "%s: SentencePiece: %s", who, st.error_message());
}

// Runs body (returning at_status) with every exception caught.
template <class F> at_status guarded(const char *who, F body)
{
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    } catch (const sentencepiece::util::Status &st) {
        return from_spm(st, who);
    } catch (const std::exception &e) {
        return text_fail(AT_E_STATE, "%s: unexpected error: %s", who, e.what());
    } catch (...) {
        return text_fail(AT_E_STATE, "%s: unexpected error", who);
    }
}

// One thread per tokenizer, as for the accumulators.
class busy_guard {
  public:
    explicit busy_guard(at_tokenizer *t) : t_(t), ok_(!t->busy.test_and_set(std::memory_order_acquire)) {}
    ~busy_guard()
    {
        if (ok_)
            t_->busy.clear(std::memory_order_release);
    }
    busy_guard(const busy_guard &) = delete;
    busy_guard &operator=(const busy_guard &) = delete;
    bool ok() const { return ok_; }

  private:
    at_tokenizer *t_;
    bool ok_;
};

#define ENTER(t, who)                                                                    \
    busy_guard guard_(t);                                                                \
    if (!guard_.ok())                                                                    \
        return text_fail(AT_E_STATE, "%s: the tokenizer is in use by another thread", who)

at_status check_utf8(const char *text, size_t len, const char *who, const char *what)
{
    if (!text && len)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, what);
    size_t bad = utf8_invalid_at(reinterpret_cast<const unsigned char *>(text), len);
    if (bad < len)
        return text_fail(AT_E_FORMAT, "%s: %s is not valid UTF-8 (byte %zu)", who, what, bad);
    return AT_OK;
}

// The lines of the training files.
class lines_iter : public sentencepiece::SentenceIterator {
  public:
    explicit lines_iter(const std::vector<std::string> *lines) : lines_(lines) {}
    bool done() const override { return i_ >= lines_->size(); }
    void Next() override { i_++; }
    const std::string &value() const override { return (*lines_)[i_]; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

  private:
    const std::vector<std::string> *lines_;
    size_t i_ = 0;
};

struct freer {
    void operator()(unsigned char *p) const { std::free(p); }
};

at_status read_lines(const char *path, std::vector<std::string> &lines, int64_t max)
{
    const char *who = "at_tokenizer_train";
    unsigned char *raw = nullptr;
    size_t len = 0;
    char err[512];
    at_status s = file_read_all(path, 0, &raw, &len, err, sizeof err);
    if (s != AT_OK)
        return text_fail(s, "%s: %s", who, err);
    std::unique_ptr<unsigned char, freer> buf(raw);
    size_t line = 1, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && raw[i] != '\n')
            continue;
        size_t n = i - start;
        const unsigned char *p = raw + start;
        size_t bad = utf8_invalid_at(p, n);
        if (bad < n)
            return text_fail(AT_E_FORMAT, "%s: %s:%zu: not valid UTF-8 (byte %zu of the line)",
                             who, path, line, bad);
        if (n && p[n - 1] == '\r')
            n--;
        if (n && (max <= 0 || static_cast<int64_t>(lines.size()) < max))
            lines.emplace_back(reinterpret_cast<const char *>(p), n);
        start = i + 1;
        line++;
    }
    return AT_OK;
}

// A number as text (not std::to_string: its digit table is a GNU_UNIQUE
// symbol that would stay global in libat_text.a).
std::string num(double v)
{
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", v);
    return b;
}

at_status make(std::string proto, at_tokenizer **out, const char *who)
{
    std::unique_ptr<at_tokenizer> t(new at_tokenizer);
    t->proto = std::move(proto);
    auto st = t->sp.LoadFromSerializedProto(t->proto);
    if (!st.ok())
        return from_spm(st, who);
    if (t->sp.GetPieceSize() <= 0)
        return text_fail(AT_E_FORMAT, "%s: the model has no pieces", who);
    *out = t.release();
    return AT_OK;
}

}  // namespace

extern "C" {

AT_TEXT_API at_status at_tokenizer_train(const char *const *paths, size_t n_paths,
                                         const at_tokenizer_options *opt, at_tokenizer **out)
{
    const char *who = "at_tokenizer_train";
    if (out)
        *out = nullptr;
    if (!out || !paths || n_paths == 0)
        return text_fail(AT_E_ARG, "%s: %s", who,
                         !out ? "out is NULL" : !paths ? "paths is NULL" : "no training file");
    if (opt && opt->struct_size < sizeof(at_tokenizer_options))
        return text_fail(AT_E_ARG, "%s: opt->struct_size is %zu, below %zu", who,
                         opt->struct_size, sizeof(at_tokenizer_options));
    at_tokenizer_options o = {};
    o.struct_size = sizeof o;
    if (opt)
        o = *opt;
    if (o.model != AT_TOK_BPE && o.model != AT_TOK_UNIGRAM)
        return text_fail(AT_E_ARG, "%s: unknown model type %d", who, (int)o.model);
    int32_t vocab = o.vocab_size ? o.vocab_size : 8000;
    if (vocab < 8 || vocab > (1 << 24))
        return text_fail(AT_E_ARG, "%s: vocab_size %d outside 8..%d", who, (int)vocab, 1 << 24);
    double cov = o.character_coverage == 0 ? 1.0 : o.character_coverage;
    if (!(cov >= 0.5 && cov <= 1.0))
        return text_fail(AT_E_ARG, "%s: character_coverage %g outside 0.5..1", who, cov);
    int32_t threads = o.threads ? o.threads : 1;
    if (threads < 1 || threads > 1024)
        return text_fail(AT_E_ARG, "%s: threads %d outside 1..1024", who, (int)threads);
    if (o.max_sentences < 0)
        return text_fail(AT_E_ARG, "%s: max_sentences is negative", who);
    for (size_t i = 0; i < n_paths; i++)
        if (!paths[i])
            return text_fail(AT_E_ARG, "%s: paths[%zu] is NULL", who, i);
    return guarded(who, [&]() -> at_status {
        std::vector<std::string> lines;
        for (size_t i = 0; i < n_paths; i++) {
            at_status s = read_lines(paths[i], lines, o.max_sentences);
            if (s != AT_OK)
                return s;
        }
        if (lines.empty())
            return text_fail(AT_E_FORMAT, "%s: the training files have no text", who);
        std::unordered_map<std::string, std::string> kw = {
            {"model_type", o.model == AT_TOK_BPE ? "bpe" : "unigram"},
            {"vocab_size", num(vocab)},
            {"character_coverage", num(cov)},
            {"num_threads", num(threads)},
            {"pad_id", num(AT_TOK_PAD_ID)},
            {"unk_id", num(AT_TOK_UNK_ID)},
            {"bos_id", num(AT_TOK_BOS_ID)},
            {"eos_id", num(AT_TOK_EOS_ID)},
            {"pad_piece", "<pad>"},
            {"unk_piece", "<unk>"},
            {"bos_piece", "<s>"},
            {"eos_piece", "</s>"},
            {"input_sentence_size", "0"},
            {"shuffle_input_sentence", "false"},
            {"hard_vocab_limit", "true"},
            {"minloglevel", "3"},
        };
        lines_iter it(&lines);
        std::string proto;
        sentencepiece::util::Status st;
        {
            std::lock_guard<std::mutex> lk(log_lock);
            int old = sentencepiece::logging::GetMinLogLevel();
            sentencepiece::logging::SetMinLogLevel(3);
            try {
                st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
            } catch (...) {
                sentencepiece::logging::SetMinLogLevel(old);
                throw;
            }
            sentencepiece::logging::SetMinLogLevel(old);
        }
        if (!st.ok())
            return from_spm(st, who, AT_E_ARG);
        return make(std::move(proto), out, who);
    });
}

AT_TEXT_API at_status at_tokenizer_load_buffer(const void *data, size_t len, at_tokenizer **out)
{
    const char *who = "at_tokenizer_load_buffer";
    if (out)
        *out = nullptr;
    if (!out || (!data && len))
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, !out ? "out" : "data");
    if (len == 0)
        return text_fail(AT_E_FORMAT, "%s: the buffer is empty", who);
    return guarded(who, [&]() -> at_status {
        return make(std::string(static_cast<const char *>(data), len), out, who);
    });
}

AT_TEXT_API at_status at_tokenizer_load(const char *path, at_tokenizer **out)
{
    const char *who = "at_tokenizer_load";
    if (out)
        *out = nullptr;
    if (!out || !path)
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, !out ? "out" : "path");
    unsigned char *raw = nullptr;
    size_t len = 0;
    char err[512];
    at_status s = file_read_all(path, (size_t)1 << 31, &raw, &len, err, sizeof err);
    if (s != AT_OK)
        return text_fail(s, "%s: %s", who, err);
    std::unique_ptr<unsigned char, freer> buf(raw);
    if (len == 0)
        return text_fail(AT_E_FORMAT, "%s: %s is empty", who, path);
    return guarded(who, [&]() -> at_status {
        s = make(std::string(reinterpret_cast<const char *>(raw), len), out, who);
        if (s != AT_OK)
            return text_fail(s, "%s (%s)", at_text_errmsg(), path);
        return AT_OK;
    });
}

AT_TEXT_API void at_tokenizer_free(at_tokenizer *t)
{
    delete t;
}

AT_TEXT_API at_status at_tokenizer_serialize(at_tokenizer *t, const void **data, size_t *len)
{
    const char *who = "at_tokenizer_serialize";
    if (!t || !data || !len)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *data = t->proto.data();
    *len = t->proto.size();
    return AT_OK;
}

AT_TEXT_API at_status at_tokenizer_to_base64(at_tokenizer *t, const char **text, size_t *len)
{
    const char *who = "at_tokenizer_to_base64";
    if (!t || !text || !len)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    if (t->base64.empty()) {
        size_t n = 0;
        char *b = base64_encode(reinterpret_cast<const unsigned char *>(t->proto.data()),
                                t->proto.size(), &n);
        if (!b)
            return text_fail(AT_E_NOMEM, "%s: out of memory", who);
        at_status s = guarded(who, [&]() -> at_status {
            t->base64.assign(b, n);
            return AT_OK;
        });
        free(b);
        if (s != AT_OK)
            return s;
    }
    *text = t->base64.c_str();
    *len = t->base64.size();
    return AT_OK;
}

AT_TEXT_API at_status at_tokenizer_load_base64(const char *text, size_t len, at_tokenizer **out)
{
    const char *who = "at_tokenizer_load_base64";
    if (out)
        *out = nullptr;
    if (!out || (!text && len))
        return text_fail(AT_E_ARG, "%s: %s is NULL", who, !out ? "out" : "text");
    if (len == 0)
        return text_fail(AT_E_FORMAT, "%s: the text is empty", who);
    std::unique_ptr<unsigned char, freer> raw(static_cast<unsigned char *>(malloc(len / 4 * 3 + 3)));
    if (!raw)
        return text_fail(AT_E_NOMEM, "%s: out of memory", who);
    size_t n = base64_decode(text, len, raw.get());
    if (n == SIZE_MAX)
        return text_fail(AT_E_FORMAT, "%s: the text is not base64 (RFC 4648, padded)", who);
    return at_tokenizer_load_buffer(raw.get(), n, out);
}

AT_TEXT_API at_status at_tokenizer_save(at_tokenizer *t, const char *path)
{
    const char *who = "at_tokenizer_save";
    if (!t || !path)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    char err[512];
    file_out f;
    at_status s = file_out_begin(&f, path, err, sizeof err);
    if (s != AT_OK)
        return text_fail(s, "%s: %s", who, err);
    if (fwrite(t->proto.data(), 1, t->proto.size(), f.fp) != t->proto.size()) {
        file_out_abort(&f);
        return text_fail(AT_E_IO, "%s: cannot write %s", who, path);
    }
    s = file_out_commit(&f, err, sizeof err);
    if (s != AT_OK)
        return text_fail(s, "%s: %s", who, err);
    return AT_OK;
}

AT_TEXT_API at_status at_tokenizer_encode(at_tokenizer *t, const char *text, size_t len,
                                          const int32_t **ids, size_t *n)
{
    const char *who = "at_tokenizer_encode";
    if (!t || !ids || !n)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *ids = nullptr;
    *n = 0;
    at_status s = check_utf8(text, len, who, "the text");
    if (s != AT_OK)
        return s;
    ENTER(t, who);
    return guarded(who, [&]() -> at_status {
        std::vector<int> v;
        auto st = t->sp.Encode(std::string_view(len ? text : "", len), &v);
        if (!st.ok())
            return from_spm(st, who);
        t->ids.assign(v.begin(), v.end());
        *ids = t->ids.data();
        *n = t->ids.size();
        return AT_OK;
    });
}

AT_TEXT_API at_status at_tokenizer_encode_pieces(at_tokenizer *t, const char *text, size_t len,
                                                 const char *const **pieces, size_t *n)
{
    const char *who = "at_tokenizer_encode_pieces";
    if (!t || !pieces || !n)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *pieces = nullptr;
    *n = 0;
    at_status s = check_utf8(text, len, who, "the text");
    if (s != AT_OK)
        return s;
    ENTER(t, who);
    return guarded(who, [&]() -> at_status {
        std::vector<std::string> v;
        auto st = t->sp.Encode(std::string_view(len ? text : "", len), &v);
        if (!st.ok())
            return from_spm(st, who);
        t->pieces = std::move(v);
        t->piece_ptrs.clear();
        for (const auto &p : t->pieces)
            t->piece_ptrs.push_back(p.c_str());
        *pieces = t->piece_ptrs.data();
        *n = t->piece_ptrs.size();
        return AT_OK;
    });
}

AT_TEXT_API at_status at_tokenizer_decode(at_tokenizer *t, const int32_t *ids, size_t n,
                                          const char **text, size_t *len)
{
    const char *who = "at_tokenizer_decode";
    if (!t || !text || !len || (!ids && n))
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *text = "";
    *len = 0;
    int32_t size = t->sp.GetPieceSize();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= size)
            return text_fail(AT_E_RANGE, "%s: ids[%zu] = %d is outside the vocabulary 0..%d",
                             who, i, (int)ids[i], (int)size - 1);
    ENTER(t, who);
    return guarded(who, [&]() -> at_status {
        std::vector<int> v(ids, ids + n);
        std::string out;
        auto st = t->sp.Decode(v, &out);
        if (!st.ok())
            return from_spm(st, who);
        t->text = std::move(out);
        *text = t->text.c_str();
        *len = t->text.size();
        return AT_OK;
    });
}

AT_TEXT_API int32_t at_tokenizer_vocab_size(const at_tokenizer *t)
{
    return t ? t->sp.GetPieceSize() : 0;
}

AT_TEXT_API at_status at_tokenizer_piece(const at_tokenizer *t, int32_t id, const char **piece)
{
    const char *who = "at_tokenizer_piece";
    if (!t || !piece)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *piece = "";
    int32_t size = t->sp.GetPieceSize();
    if (id < 0 || id >= size)
        return text_fail(AT_E_RANGE, "%s: id %d is outside the vocabulary 0..%d", who, (int)id,
                         (int)size - 1);
    return guarded(who, [&]() -> at_status {
        *piece = t->sp.IdToPiece(id).c_str();
        return AT_OK;
    });
}

AT_TEXT_API at_status at_tokenizer_id(const at_tokenizer *t, const char *piece, size_t len,
                                      int32_t *id)
{
    const char *who = "at_tokenizer_id";
    if (!t || !id)
        return text_fail(AT_E_ARG, "%s: a NULL argument", who);
    *id = -1;
    at_status s = check_utf8(piece, len, who, "the piece");
    if (s != AT_OK)
        return s;
    return guarded(who, [&]() -> at_status {
        *id = t->sp.PieceToId(std::string_view(len ? piece : "", len));
        return AT_OK;
    });
}

AT_TEXT_API int32_t at_tokenizer_special_id(const at_tokenizer *t, at_tok_special which)
{
    if (!t)
        return -1;
    switch (which) {
    case AT_TOK_PAD:
        return t->sp.pad_id();
    case AT_TOK_UNK:
        return t->sp.unk_id();
    case AT_TOK_BOS:
        return t->sp.bos_id();
    case AT_TOK_EOS:
        return t->sp.eos_id();
    }
    return -1;
}

}  // extern "C"
