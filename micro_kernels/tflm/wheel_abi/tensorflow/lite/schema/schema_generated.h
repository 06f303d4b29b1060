/* Stand-in for TFLM's tensorflow/lite/schema/schema_generated.h in -DTT_TFLM_WHEEL_ABI test builds: see tflm_wheel_app.h. */
#include "tflm_wheel_app.h"
