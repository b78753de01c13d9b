#!/bin/sh
# Progress that tries to go backwards (10, 60, 30), then fails with no
# final status line of its own: exit 1.
s=${1:-stdout}
echo "{\"level\": \"INFO\", \"sistema\": \"$s\", \"mensagem\": \"dez\", \"progresso\": 10}"
echo "{\"level\": \"INFO\", \"sistema\": \"$s\", \"mensagem\": \"sessenta\", \"progresso\": 60}"
echo "{\"level\": \"INFO\", \"sistema\": \"$s\", \"mensagem\": \"trinta\", \"progresso\": 30}"
exit 1
