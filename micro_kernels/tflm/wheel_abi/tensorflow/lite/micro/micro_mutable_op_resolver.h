/* Stand-in for TFLM's tensorflow/lite/micro/micro_mutable_op_resolver.h in -DTT_TFLM_WHEEL_ABI test builds: see tflm_wheel_app.h. */
#include "tflm_wheel_app.h"
