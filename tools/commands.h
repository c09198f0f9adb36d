/* commands.h — the vclip-run subcommands, one file each, and what they share. */
#ifndef VCLIP_COMMANDS_H
#define VCLIP_COMMANDS_H

#include <stddef.h>
#include "../models/tokenizer/tokenizer_source.h"

int cmd_tokenize(int argc, char **argv);
int cmd_encode_text(int argc, char **argv);
int cmd_frames(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_retrieval(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_average(int argc, char **argv);
int cmd_patch(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
