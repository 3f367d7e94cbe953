/* detect/logf1.c — the table of detect/logf1.h, filled once. */
#include "config.h"

#include <math.h>
#include <pthread.h>

#include "detect/logf1.h"

struct det_logf1_row det_logf1_tab[DET_LOGF1_N];
static pthread_once_t det_logf1_once = PTHREAD_ONCE_INIT;

static void det_logf1_fill(void)
{
	for (int i = 0; i < DET_LOGF1_N; i++) {
		double invc = 1 / (1 + (i + 0.5) / DET_LOGF1_N);
		det_logf1_tab[i].invc = invc;
		det_logf1_tab[i].logc = -log(invc);
	}
}

void det_logf1_prepare(void)
{
	pthread_once(&det_logf1_once, det_logf1_fill);
}
