// White-box tests of the HDF5 helper layer's policies (core/src/h5/): UTF-8 and
// quoting with hand-worked cases, decimal names, IEEE layouts, the bounded deflate
// filter (installed, fail-closed without a limit, exact size with one) and the
// Fletcher-32 checksums the writers add, down to the chunk a flipped byte names.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "h5/bounded_deflate.h"
#include "h5/checked_dataset.h"
#include "h5/hdf5_util.h"
#include "kvq/base/error.h"
#include "kvq/base/hdf5_process.h"
#include "kvq/base/text.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "test_util.h"

namespace kvq {
namespace {

// As kvq and kvq-studio do first in main(): this binary refuses files (such as
// tests/data/malformed/dump/fuzz_infinite_loop_at_exit.h5) after which HDF5's clean-up
// at exit would print "infinite loop closing library". Nothing else touches HDF5 during
// static initialisation, so this comes first.
const bool kHdf5Prepared = prepareHdf5ForProcess();

TEST(Hdf5Process, PreparedBeforeAnyOtherHdf5Call) {
  EXPECT_TRUE(kHdf5Prepared);
  EXPECT_FALSE(prepareHdf5ForProcess());  // too late now: HDF5 is in use
}

TEST(Utf8Policy, HandWorkedSequences) {
  EXPECT_EQ(utf8Problem(""), "");
  EXPECT_EQ(utf8Problem("HuggingFaceTB/SmolLM2"), "");
  EXPECT_EQ(utf8Problem("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "");  // é € 😀
  EXPECT_EQ(utf8Problem("\xF4\x8F\xBF\xBF"), "");                           // U+10FFFF, the last
  EXPECT_EQ(utf8Problem("ab\xFF"), "byte 0xff at offset 2");
  EXPECT_EQ(utf8Problem("\xC0\xAF"), "byte 0xc0 at offset 0");          // overlong '/'
  EXPECT_EQ(utf8Problem("x\xE0\x80\xAF"), "byte 0xe0 at offset 1");     // overlong, 3 bytes
  EXPECT_EQ(utf8Problem("\xED\xA0\x80"), "byte 0xed at offset 0");      // surrogate U+D800
  EXPECT_EQ(utf8Problem("\xF4\x90\x80\x80"), "byte 0xf4 at offset 0");  // U+110000
  EXPECT_EQ(utf8Problem("ok\xE2\x82"), "byte 0xe2 at offset 2");        // cut short
  EXPECT_EQ(utf8Problem("\xC3("), "byte 0xc3 at offset 0");             // bad continuation
}

TEST(Utf8Policy, QuotesAtMost100BytesEscaped) {
  EXPECT_EQ(quoteForMessage("kv-dump"), "\"kv-dump\"");
  EXPECT_EQ(quoteForMessage(std::string("a\0b\"\\\xff", 6)), "\"a\\x00b\\\"\\\\\\xff\"");
  const std::string quoted = quoteForMessage(std::string(150, 'x'));
  EXPECT_EQ(quoted, "\"" + std::string(100, 'x') + "…\" (150 bytes)");
}

TEST(NamePolicy, DecimalIndexWithoutSignSpaceOrLeadingZero) {
  int index = -1;
  EXPECT_TRUE(h5::parseDecimalIndex("0", index));
  EXPECT_EQ(index, 0);
  EXPECT_TRUE(h5::parseDecimalIndex("917", index));
  EXPECT_EQ(index, 917);
  for (const char* bad : {"", "00", "07", "+1", "-1", " 1", "1 ", "1e3", "0x1", "1234567890"}) {
    EXPECT_FALSE(h5::parseDecimalIndex(bad, index)) << bad;
  }
}

TEST(TypePolicy, OnlyIeeeFloatLayouts) {
  EXPECT_TRUE(h5::isIeeeFloat(H5T_IEEE_F32BE));
  EXPECT_TRUE(h5::isIeeeFloat(H5T_IEEE_F64LE));
  const h5::Datatype half = h5::makeHalfType();
  EXPECT_TRUE(h5::isIeeeFloat(half.get()));
  EXPECT_TRUE(h5::isIeeeHalf(half.get()));
  EXPECT_FALSE(h5::isIeeeHalf(H5T_IEEE_F32LE));
  EXPECT_FALSE(h5::isIeeeFloat(H5T_NATIVE_LDOUBLE));
  EXPECT_FALSE(h5::isIeeeFloat(H5T_STD_I32LE));
  // The layout fuzzing found: exponent at bit 56, so its 11 bits overlap the sign bit.
  const h5::Datatype odd(H5Tcopy(H5T_IEEE_F64LE));
  ASSERT_GE(H5Tset_fields(odd.get(), 63, 52, 11, 0, 52), 0);
  ASSERT_GE(H5Tset_ebias(odd.get(), 1000), 0);
  EXPECT_FALSE(h5::isIeeeFloat(odd.get()));
  EXPECT_EQ(h5::describeType(odd.get()), "float64 (non-IEEE layout)");
}

// A one-chunk [n] float32 dataset with deflate, in a new file.
std::string deflatedFile(const std::filesystem::path& dir, hsize_t n) {
  const std::string path = (dir / "deflated.h5").string();
  const h5::ErrorSilencer silence;  // sets up the library (bounded filter) first
  const h5::File file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  const h5::PropList dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), 1, &n);
  H5Pset_deflate(dcpl.get(), 6);
  const h5::Dataspace space(H5Screate_simple(1, &n, nullptr));
  const h5::Dataset ds(
      H5Dcreate2(file.get(), "x", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  std::vector<float> values(n);
  for (hsize_t i = 0; i < n; ++i) values[i] = static_cast<float>(i % 7);
  EXPECT_GE(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  return path;
}

TEST(BoundedDeflate, InstalledAndFailsClosedWithoutALimit) {
  ASSERT_TRUE(h5::boundedDeflateInstalled()) << "H5Z_register not found: HDF5's unbounded deflate is in use";
  const std::string path = deflatedFile(test::freshTempDir(), 1000);
  const h5::ErrorSilencer silence;
  const h5::File file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const h5::Dataset ds(H5Dopen2(file.get(), "x", H5P_DEFAULT));
  std::vector<float> out(1000, -1.0f);
  // No DecodeLimit: refused, so no read path can forget to bound its chunks.
  EXPECT_LT(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), 0);
  EXPECT_EQ(h5::takeDecodeRefusal(), "was read without a size limit (internal error)");
  {
    const h5::DecodeLimit wrong(3996);  // one float short of the chunk
    EXPECT_LT(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), 0);
    EXPECT_EQ(h5::takeDecodeRefusal(), "decodes to more than its nominal 3996 bytes");
  }
  {
    const h5::DecodeLimit exact(4000);
    ASSERT_GE(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), 0);
  }
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<float>(i % 7)) << i;
}

// Filter ids of a dataset's pipeline, in order.
std::vector<H5Z_filter_t> pipeline(const std::string& path, const char* dataset) {
  const h5::File file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  const h5::Dataset ds(H5Dopen2(file.get(), dataset, H5P_DEFAULT));
  const h5::PropList dcpl(H5Dget_create_plist(ds.get()));
  std::vector<H5Z_filter_t> ids;
  for (int i = 0; i < H5Pget_nfilters(dcpl.get()); ++i) {
    unsigned flags = 0, config = 0;
    size_t count = 0;
    ids.push_back(
        H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &count, nullptr, 0, nullptr, &config));
  }
  return ids;
}

std::string writeDump(const std::filesystem::path& dir, bool gzip, bool checksums, int64_t tokens) {
  DumpHeader h = test::dumpHeader("checksums", 1, 2, 8, tokens);
  h.gzip = gzip;
  h.checksums = checksums;
  const std::string path = (dir / ("d" + std::to_string(gzip) + std::to_string(checksums) + ".h5")).string();
  auto writer = DumpWriter::create(path, h);
  std::vector<float> data(static_cast<size_t>(tokens) * 16);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::sin(0.01f * static_cast<float>(i));
  const Slab slab = test::slabOf(tokens, 2, 8, data);
  writer->writeLayer(0, slab, slab);
  std::vector<int32_t> ids(static_cast<size_t>(tokens), 7);
  writer->writeTokenIds(ids);
  writer->commit();
  return path;
}

TEST(Checksums, WriterAddsFletcher32LastAndOnlyWhenAsked) {
  const auto dir = test::freshTempDir();
  const std::string both = writeDump(dir, true, true, 100);
  EXPECT_EQ(pipeline(both, "/layers/0/keys"),
            (std::vector<H5Z_filter_t>{H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32}));
  EXPECT_EQ(pipeline(both, "/tokens"), (std::vector<H5Z_filter_t>{H5Z_FILTER_FLETCHER32}));
  const std::string none = writeDump(dir, false, false, 100);
  EXPECT_TRUE(pipeline(none, "/layers/0/keys").empty());
  EXPECT_TRUE(pipeline(none, "/tokens").empty());
  EXPECT_NO_THROW(DumpReader::open(none));  // a file without checksums still opens
}

// Flips one byte inside the stored chunk at token `token` of /layers/0/values.
void damageChunk(const std::string& path, hsize_t token) {
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  {
    const h5::File file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    const h5::Dataset ds(H5Dopen2(file.get(), "/layers/0/values", H5P_DEFAULT));
    const hsize_t offset[3] = {token, 0, 0};
    unsigned mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(ds.get(), offset, &mask, &addr, &size), 0);
  }
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(addr + size / 3));
  char byte = 0;
  f.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x10);
  f.seekp(static_cast<std::streamoff>(addr + size / 3));
  f.write(&byte, 1);
}

TEST(Checksums, AFlippedByteIsRefusedNamingItsChunkAndTokens) {
  const auto dir = test::freshTempDir();
  for (const bool gzip : {false, true}) {
    const std::string path = writeDump(dir, gzip, true, 2500);  // chunks [0,1024) [1024,2048) [2048,2500)
    damageChunk(path, 2048);
    OpenOptions structureOnly;
    structureOnly.scanValues = false;
    const auto reader = DumpReader::open(path, structureOnly);  // sizes still fit: opens
    EXPECT_NO_THROW(reader->read(0, Kind::Values, 0, 2048));    // the intact chunks read
    try {
      reader->read(0, Kind::Values, 1000, 1500);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                path +
                    ": /layers/0/values: checksum mismatch (Fletcher-32) in the chunk at "
                    "[2048, 0, 0] (tokens [2048, 2500)): the file is damaged");
    }
    // The value scan at open finds it too.
    EXPECT_THROW(DumpReader::open(path), Error);
  }
}

}  // namespace
}  // namespace kvq
