/*
 * worker_stamp: the pipeline of the dispatch-latency benchmark
 * (bench/worker.sh latency). Prints one log line with the wall clock in ns
 * taken as soon as it runs, so enqueue -> pipeline start can be measured
 * from the job's logs without the cost of a shell or an interpreter.
 */
#include <stdio.h>
#include <time.h>

int main(void);

int
main(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return 1;
	if (printf("[INFO] [stdout] t=%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec) <
	    0)
		return 1;
	return fflush(stdout) == EOF ? 1 : 0;
}
