/* attn: the command line of libat. Dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "attn.h"
#include "report.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "the main job: train the copy task, write its attention to ./attn-demo"},
    {"train", cmd_train, "train the annotated Transformer's copy task (attn train --task copy)"},
    {"decode", cmd_decode, "greedy decoding with a trained model; --dump writes its attention"},
    {"translate", cmd_translate, "translate sentences with a model that carries its tokenizer"},
    {"info", cmd_info, "a checkpoint's configuration and tensor table"},
    {"dump", cmd_dump, "run the forward pass on a batch; write every attention tensor"},
    {"viz", cmd_viz, "chart a model's attention on an input: SVG, Vega-Lite, HTML explorer"},
    {"stats", cmd_stats, "statistics of every attention head on an input; --csv, --json"},
    {"importance", cmd_importance, "how much each head matters: gate gradients and ablations"},
    {"heads", cmd_heads, "the role of every head: its best template (diagonal, prev, broad, ...)"},
    {"attribute", cmd_attribute, "dL/dA and A*dL/dA for every attention tensor of a batch"},
    {"patch", cmd_patch, "activation patching: each head's output from a corrupted input"},
    {"counterfactual", cmd_counterfactual, "permuted or uniform attention per head: the change"},
    {"snapshots", cmd_snapshots, "when each head took its role in training (train --probe)"},
    {"rollout", cmd_rollout, "attention rollout and flow, value-norm attention of a batch"},
    {"prune", cmd_prune, "pruning curves: the metric as heads are removed (importance, random)"},
    {"compare", cmd_compare, "largest difference between same-named tensors of two files"},
    {"eval", cmd_eval, "corpus BLEU and chrF2 of translations, as sacreBLEU prints them"},
    {"corpus", cmd_corpus, "a Spanish-English Bible corpus from Debian's SWORD modules"},
    {"align-eval", cmd_align_eval, "score cross-attention word alignments against gold links"},
    {"bench", cmd_bench, "time the forward pass, a training step, an epoch, decoding"},
};
enum { NCOMMANDS = sizeof commands / sizeof *commands };

static void usage(FILE *out)
{
    fprintf(out, "usage: attn <command> [options]   (attn <command> --help for its options)\n"
                 "\n"
                 "libat %s: the annotated Transformer, with every attention tensor.\n"
                 "\n"
                 "commands:\n", at_version_string());
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "this text, or attn help <command>");
    fprintf(out, "\n"
                 "options: --version, --help\n"
                 "exit status: 0 done, 1 failed while running, 2 bad command line\n");
}

static const command *find(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] && *argv[0])
        attn_program = argv[0];
    if (argc < 2) {
        usage(stderr);
        return ATTN_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("attn %s (libat %s)\n", AT_VERSION_STRING, at_version_string());
        return ATTN_OK;
    }
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            const command *c = find(argv[2]);
            if (!c) {
                attn_error("help: unknown command '%.40s' (see attn help)", argv[2]);
                return ATTN_USAGE;
            }
            static char help_flag[] = "--help";
            char *args[] = {argv[2], help_flag, NULL};
            return c->run(2, args);
        }
        usage(stdout);
        return ATTN_OK;
    }
    const command *c = find(name);
    if (!c) {
        if (name[0] == '-')
            attn_error("unknown option '%.40s' (see attn help)", name);
        else
            attn_error("unknown command '%.40s' (see attn help)", name);
        return ATTN_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
