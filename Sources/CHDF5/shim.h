// libhdf5 (Debian: libhdf5-dev), used to read and write Keras weight files (.h5).
// HDF5's type and property constants are macros that call H5open(); Swift imports none of them,
// so each one Kizuki uses is a function here.
#include <hdf5.h>

static inline hid_t kizuki_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t kizuki_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t kizuki_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t kizuki_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t kizuki_h5s_all(void) { return H5S_ALL; }
static inline unsigned kizuki_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned kizuki_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t kizuki_h5e_default(void) { return H5E_DEFAULT; }
