/* cmd_encode_text.c — placeholder replaced below */
#include "commands.h"
int cmd_encode_text(int argc, char **argv) { (void)argc; (void)argv; return 2; }
