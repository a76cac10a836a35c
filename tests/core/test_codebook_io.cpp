// Codebook file v1 round trips, refusals, and the npz container byte layout.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_fit.h"
#include "kvq/io/npz_writer.h"
#include "test_util.h"

namespace kvq {
namespace {

CodebookFile sampleFile(bool perHead) {
  CodebookFile f;
  f.config = presetConfig("quality");
  f.config.codebookSize = 4;
  f.config.depth = 2;
  f.config.groupSize = 4;
  f.config.perHead = perHead;
  f.config.seed = 1234567890123ULL;
  f.config.heldOutFraction = 0.125;
  f.sourceDump = "/data/dump.h5";
  f.model = "test-model";
  f.headDim = 8;
  f.numKvHeads = 2;
  for (int layer : {3, 10}) {
    for (Kind kind : {Kind::Keys, Kind::Values}) {
      QuantizerSet set;
      set.layer = layer;
      set.kind = kind;
      set.channelOrder = {0, 2, 4, 6, 1, 3, 5, 7};
      for (int q = 0; q < (perHead ? 2 : 1); ++q) {
        Codebooks b(2, 4, 4);
        for (size_t i = 0; i < b.data.size(); ++i) b.data[i] = 0.25f * static_cast<float>(i) - layer + q;
        set.codebooks.push_back(b);
      }
      f.sets.push_back(set);
      f.metrics.push_back({{"relative_error", 0.01 * layer}, {"snr_db", 20.0}});
      f.relativeErrorByDepth.push_back({0.5, 0.01 * layer});
    }
  }
  return f;
}

void expectSameConfig(const RvqConfig& a, const RvqConfig& b) {
  EXPECT_EQ(a.preset, b.preset);
  EXPECT_EQ(a.codebookSize, b.codebookSize);
  EXPECT_EQ(a.depth, b.depth);
  EXPECT_EQ(a.groupSize, b.groupSize);
  EXPECT_EQ(a.keyGrouping, b.keyGrouping);
  EXPECT_EQ(a.valueGrouping, b.valueGrouping);
  EXPECT_EQ(a.perHead, b.perHead);
  EXPECT_EQ(a.trainSample, b.trainSample);
  EXPECT_EQ(a.init, b.init);
  EXPECT_EQ(a.kmeansIterations, b.kmeansIterations);
  EXPECT_EQ(a.emaDecay, b.emaDecay);
  EXPECT_EQ(a.emaEpsilon, b.emaEpsilon);
  EXPECT_EQ(a.emaSteps, b.emaSteps);
  EXPECT_EQ(a.batchSize, b.batchSize);
  EXPECT_EQ(a.deadThreshold, b.deadThreshold);
  EXPECT_EQ(a.lloydIterations, b.lloydIterations);
  EXPECT_EQ(a.beamWidth, b.beamWidth);
  EXPECT_EQ(a.refineRounds, b.refineRounds);
  EXPECT_EQ(a.queryAware, b.queryAware);
  EXPECT_EQ(a.centerChannels, b.centerChannels);
  EXPECT_EQ(a.heldOutFraction, b.heldOutFraction);
  EXPECT_EQ(a.seed, b.seed);
}

class CodebookIo : public ::testing::TestWithParam<bool> {};

TEST_P(CodebookIo, WriteThenReadIsIdentical) {
  const std::string path = (test::freshTempDir() / "cb.h5").string();
  CodebookFile written = sampleFile(GetParam());
  written.config.queryAware = true;
  written.config.refineRounds = 2;
  written.sets[0].channelWeights = {0.5f, 2.0f, 1.0f, 1.5f, 0.25f, 3.0f, 1.0f, 0.75f};
  written.config.centerChannels = true;
  for (size_t s = 0; s < written.sets.size(); ++s) {
    for (int i = 0; i < 16; ++i)
      written.sets[s].channelMeans.push_back(0.25f * static_cast<float>(i) - static_cast<float>(s));
  }
  writeCodebookFile(path, written);
  const CodebookFile read = readCodebookFile(path);
  expectSameConfig(read.config, written.config);
  EXPECT_EQ(read.sourceDump, written.sourceDump);
  EXPECT_EQ(read.model, written.model);
  EXPECT_EQ(read.headDim, 8);
  EXPECT_EQ(read.numKvHeads, 2);
  ASSERT_EQ(read.sets.size(), written.sets.size());
  for (size_t s = 0; s < read.sets.size(); ++s) {
    EXPECT_EQ(read.sets[s].layer, written.sets[s].layer);  // numeric order: 3 before 10
    EXPECT_EQ(read.sets[s].kind, written.sets[s].kind);
    EXPECT_EQ(read.sets[s].channelOrder, written.sets[s].channelOrder);
    EXPECT_EQ(read.sets[s].channelWeights, written.sets[s].channelWeights);  // set 0 only: [8], others []
    EXPECT_EQ(read.sets[s].channelMeans, written.sets[s].channelMeans);      // [2, 8] each
    ASSERT_EQ(read.sets[s].codebooks.size(), written.sets[s].codebooks.size());
    for (size_t q = 0; q < read.sets[s].codebooks.size(); ++q) {
      EXPECT_EQ(read.sets[s].codebooks[q].data, written.sets[s].codebooks[q].data);
    }
    EXPECT_EQ(read.metrics[s].at("relative_error"), written.metrics[s].at("relative_error"));
    EXPECT_EQ(read.relativeErrorByDepth[s], written.relativeErrorByDepth[s]);
  }
}

INSTANTIATE_TEST_SUITE_P(SharedAndPerHead, CodebookIo, ::testing::Bool());

// Writes file to path and returns the Error reading it back throws (a test failure if it reads,
// or if the error is not BadInput naming path).
Error refusalOf(const std::string& path, const CodebookFile& file) {
  writeCodebookFile(path, file);
  try {
    readCodebookFile(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), path);
    return e;
  }
  ADD_FAILURE() << "the file was accepted";
  return Error(ErrorKind::Internal, "", "", "");
}

TEST(CodebookIoRefusals, CentredFlagAndMeansMustAgree) {
  const std::string path = (test::freshTempDir() / "cb.h5").string();
  CodebookFile written = sampleFile(false);
  written.config.centerChannels = true;  // but no set has means
  EXPECT_NE(refusalOf(path, written).problem().find("no channel_means"), std::string::npos);
  written.config.centerChannels = false;  // means without the flag
  written.sets[0].channelMeans.assign(16, 0.5f);
  EXPECT_NE(refusalOf(path, written).problem().find("center_channels is 0"), std::string::npos);
}

TEST(CodebookFit, CentredCodebooksNeedTheDumpsHeadCount) {
  CodebookFile file = sampleFile(false);  // shared quantizers: any head count fits without means
  DumpInfo info;
  info.headDim = 8;
  info.numKvHeads = 3;
  info.layers = codebookLayers(file);
  EXPECT_NO_THROW(checkCodebooksFitDump(file, "cb.h5", info));
  file.config.centerChannels = true;
  for (QuantizerSet& set : file.sets) set.channelMeans.assign(16, 0.0f);  // 2 heads x 8
  try {
    checkCodebooksFitDump(file, "cb.h5", info);
    FAIL() << "means of 2 heads were accepted for a 3-head dump";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "num_kv_heads");
  }
  info.numKvHeads = 2;
  EXPECT_NO_THROW(checkCodebooksFitDump(file, "cb.h5", info));
}

TEST(CodebookIoRefusals, NonFiniteChannelMeanNamesTheDatasetHeadAndChannel) {
  const std::string path = (test::freshTempDir() / "cb.h5").string();
  CodebookFile written = sampleFile(false);
  written.config.centerChannels = true;
  for (QuantizerSet& set : written.sets) set.channelMeans.assign(16, 0.5f);
  written.sets[0].channelMeans[9] = std::numeric_limits<float>::infinity();
  const Error e = refusalOf(path, written);
  EXPECT_NE(e.where().find("/channel_means head 1 channel 1"), std::string::npos) << e.where();
}

TEST(CodebookIoRefusals, WrongFilesAreBadInputNamingTheFile) {
  const auto dir = test::freshTempDir();
  const std::string text = (dir / "not.h5").string();
  atomicWriteFile(text, "plain text");
  try {
    readCodebookFile(text);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), text);
  }
  EXPECT_THROW(readCodebookFile((dir / "missing.h5").string()), Error);
  EXPECT_THROW(writeCodebookFile((dir / "no" / "such" / "dir.h5").string(), sampleFile(false)), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "no"));
}

// Replaces (or adds) a root attribute of an existing file: int64 or float64.
void setRootAttr(const std::string& path, const char* name, hid_t fileType, hid_t memType,
                 const void* value) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  if (H5Aexists(f, name) > 0) H5Adelete(f, name);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, name, fileType, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  EXPECT_GE(H5Awrite(a, memType, value), 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Fclose(f);
}
void setRootInt(const std::string& path, const char* name, int64_t v) {
  setRootAttr(path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
void setRootDouble(const std::string& path, const char* name, double v) {
  setRootAttr(path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

void setRootString(const std::string& path, const char* name, const char* v) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  setRootAttr(path, name, type, type, &v);
  H5Tclose(type);
}

// Reads the file expecting BadInput; returns the error's where() (file must be `path`).
std::string refusalWhere(const std::string& path) {
  try {
    readCodebookFile(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_EQ(e.file(), path) << e.what();
    return e.where() + " | " + e.problem();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a kvq::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted";
  return "";
}

std::string freshSample(const std::string& name) {
  const std::string path = (test::freshTempDir(name) / "cb.h5").string();
  writeCodebookFile(path, sampleFile(false));
  return path;
}

// A hostile header must fail naming the file and attribute, before any allocation
// of the size it claims (2^30 x 64 entries used to end in "out of memory").
TEST(CodebookIoRefusals, HostileAttributesNameFileAndAttribute) {
  std::string path = freshSample("huge");
  setRootInt(path, "codebook_size", int64_t{1} << 30);
  setRootInt(path, "depth", 64);
  EXPECT_EQ(refusalWhere(path).rfind("/ codebook_size |", 0), 0u);

  path = freshSample("beam");  // 2^33 used to narrow to beam width 0
  setRootInt(path, "beam_width", int64_t{1} << 33);
  const std::string beam = refusalWhere(path);
  EXPECT_EQ(beam.rfind("/ beam_width |", 0), 0u) << beam;
  EXPECT_NE(beam.find("8589934592"), std::string::npos) << beam;

  path = freshSample("decay");  // validateConfig's field ema_decay is the attribute
  setRootDouble(path, "ema_decay", 1.5);
  EXPECT_EQ(refusalWhere(path), "/ ema_decay | must be in [0, 1)");

  path = freshSample("grouping");  // an enum's name, parsed by its one parser
  setRootString(path, "key_grouping", "diagonal");
  EXPECT_EQ(refusalWhere(path),
            "/ key_grouping | unknown key_grouping 'diagonal' (expected contiguous or strided)");

  path = freshSample("init");
  setRootString(path, "init", "random");
  EXPECT_EQ(refusalWhere(path), "/ init | unknown init 'random' (expected points, kmeans++ or progressive)");

  path = freshSample("groups");
  setRootInt(path, "group_size", 3);  // does not divide head_dim 8
  EXPECT_EQ(refusalWhere(path).rfind("/ group_size |", 0), 0u);

  path = freshSample("bytes");  // valid by validateConfig but 16 GiB per codebook
  setRootInt(path, "codebook_size", int64_t{1} << 24);
  setRootInt(path, "train_sample", int64_t{1} << 24);
  setRootInt(path, "depth", 64);
  EXPECT_EQ(refusalWhere(path).rfind("/ codebook_size, depth, group_size |", 0), 0u);

  path = freshSample("shape");  // consistent attributes, dataset of another shape
  setRootInt(path, "codebook_size", 8);
  const std::string shape = refusalWhere(path);
  EXPECT_EQ(shape.rfind("/layers/3/keys/codebooks |", 0), 0u) << shape;
  EXPECT_NE(shape.find("[2, 8, 4]"), std::string::npos) << shape;

  path = freshSample("heads");
  setRootInt(path, "head_dim", int64_t{1} << 40);
  EXPECT_EQ(refusalWhere(path).rfind("/ head_dim, num_kv_heads |", 0), 0u);
}

TEST(CodebookIoRefusals, NonFiniteEntryNamesDatasetStageAndEntry) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    const std::string path = freshSample("nan");
    std::vector<float> data = sampleFile(false).sets[1].codebooks[0].data;  // layer 3 values, [2, 4, 4]
    data[1 * 16 + 2 * 4 + 3] = bad;                                         // stage 1, entry 2, channel 3
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/layers/3/values/codebooks", H5P_DEFAULT);
    ASSERT_GE(d, 0);
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), 0);
    H5Dclose(d);
    H5Fclose(f);
    EXPECT_EQ(
        refusalWhere(path),
        "/layers/3/values/codebooks stage 1 entry 2 channel 3 | codebook entry is not finite (NaN or Inf)");
  }
}

std::string readAll(const std::string& path);

TEST(FileUtil, AtomicWriteReplacesContentAndLeavesNoTemporary) {
  const auto dir = test::freshTempDir();
  const std::string path = (dir / "r.json").string();
  atomicWriteFile(path, "first");
  atomicWriteFile(path, "second");
  EXPECT_EQ(readAll(path), "second");
  EXPECT_FALSE(std::filesystem::exists(temporaryPathFor(path)));
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files += entry.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1u);
  EXPECT_THROW(atomicWriteFile((dir / "missing" / "x").string(), "x"), Error);
}

TEST(FileUtil, TemporaryNamesAreUniqueWithinTheProcess) {
  const std::string path = "/some/dir/out.h5";
  const std::string a = temporaryPathFor(path), b = temporaryPathFor(path);
  EXPECT_NE(a, b);
  const std::string prefix = path + ".tmp-" + std::to_string(::getpid()) + "-";
  EXPECT_EQ(a.rfind(prefix, 0), 0u) << a;
  EXPECT_EQ(b.rfind(prefix, 0), 0u) << b;
}

TEST(FileUtil, CommitOfAMissingTemporaryThrowsNamingTheTarget) {
  const auto dir = test::freshTempDir();
  const std::string path = (dir / "out.h5").string();
  try {
    commitTemporaryFile(temporaryPathFor(path), path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

TEST(Npz, NpyHeaderIsVersion1AlignedTo64) {
  const float data[6] = {1, 2, 3, 4, 5, 6};
  const std::string npy = npyFile("<f4", {2, 3}, data, sizeof data);
  ASSERT_EQ(npy.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t headerLen = static_cast<unsigned char>(npy[8]) | (static_cast<unsigned char>(npy[9]) << 8);
  EXPECT_EQ((10 + headerLen) % 64, 0u);
  const std::string header = npy.substr(10, headerLen);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(header.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(std::memcmp(npy.data() + 10 + headerLen, data, sizeof data), 0);
  EXPECT_NE(npyFile("<i4", {5}, data, 20).find("'shape': (5,)"), std::string::npos);
  EXPECT_NE(npyFile("<U1", {}, data, 4).find("'shape': ()"), std::string::npos);
}

TEST(Npz, ZipEntriesAreStoredWithCorrectCrc) {
  const std::string path = (test::freshTempDir() / "x.npz").string();
  NpzWriter npz;
  const int32_t ints[3] = {7, -1, 42};
  npz.addInt32("ints", {3}, ints);
  npz.addString("config", "{\"a\":1}");
  npz.write(path);
  const std::string zip = readAll(path);
  ASSERT_EQ(le32(zip, 0), 0x04034b50u);
  EXPECT_EQ(zip[8], 0);  // method 0: stored
  const uint32_t crc = le32(zip, 14), size = le32(zip, 18);
  const uint32_t nameLen = static_cast<unsigned char>(zip[26]);
  EXPECT_EQ(zip.substr(30, nameLen), "ints.npy");
  const std::string payload = zip.substr(30 + nameLen, size);
  EXPECT_EQ(payload, npyFile("<i4", {3}, ints, sizeof ints));
  EXPECT_EQ(crc, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                             static_cast<uInt>(payload.size()))));
  // End of central directory: 2 entries.
  const size_t eocd = zip.size() - 22;
  EXPECT_EQ(le32(zip, eocd), 0x06054b50u);
  EXPECT_EQ(static_cast<unsigned char>(zip[eocd + 10]), 2);
}

}  // namespace
}  // namespace kvq
