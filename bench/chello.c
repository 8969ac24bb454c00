/* The C counterpart of hello/main.go, built both static and dynamically linked. */
#include <stdio.h>

int main(void) {
    puts("hello, world");
    return 0;
}
