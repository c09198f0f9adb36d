/* classify.c — zero-shot labels for videos through the vclip C library, as
 * another program would use it: built against the installed library with
 * `cc classify.c $(pkg-config --cflags --libs vclip)` (make test does).
 *
 * usage: classify VISUAL.onnx TEXT.onnx "class a,class b,..." VIDEO...
 * Prints one line per video: the video, then every class's probability. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vclip.h>

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s VISUAL.onnx TEXT.onnx \"class a,class b,...\" VIDEO...\n", argv[0]);
        return 2;
    }
    /* the class names: split the comma-separated list in place */
    const char *names[256];
    int n = 0;
    for (char *s = argv[3]; n < 256; s++) {
        names[n++] = s;
        if (!(s = strchr(s, ','))) break;
        *s = 0;
    }

    vclip_classifier *c = vclip_classifier_open(argv[1], NULL, argv[2], NULL);
    if (!c || vclip_classifier_set_classes(c, names, n)) {
        fprintf(stderr, "classify: %s\n", vclip_last_error());
        vclip_classifier_free(c);
        return 1;
    }
    float *probs = malloc(sizeof(float) * (size_t)n);
    int status = 0;
    for (int i = 4; i < argc && probs; i++) {
        if (vclip_classify(c, argv[i], probs)) {
            printf("%s error %s\n", argv[i], vclip_last_error());
            status = 1;
            continue;
        }
        printf("%s", argv[i]);
        for (int k = 0; k < n; k++) printf(" %.9g", probs[k]);
        printf("\n");
    }
    free(probs);
    vclip_classifier_free(c);
    return status;
}
