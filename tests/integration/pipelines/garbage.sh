#!/bin/sh
# Output no parser should trust: invalid UTF-8 and control bytes, CR-only
# and CRLF line ends, a line of 100,000 bytes, NUL bytes, and a last line
# without its newline.
printf 'plain one\r\n'
printf 'cr one\rcr two\rcr three\r'
printf 'bad \377\376 utf8 \033[31mred\033[0m\n'
printf 'nul\000inside\n'
head -c 100000 /dev/zero | tr '\0' 'x'
printf '\n'
printf '[ERROR] [stderr-ish] to stderr\n' >&2
printf '\n\n\r\n'
printf 'no newline at the end'
