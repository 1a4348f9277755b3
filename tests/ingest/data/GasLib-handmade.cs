<?xml version="1.0" encoding="UTF-8"?>
<!-- Hand-made for the hub's tests, after the GasLib compressor-station format
     (http://gaslib.zib.de/CompressorStations): the GasLib files the tests have use turbo compressors and
     gas turbines only; this one has every kind of compressor and drive, a measurement table that is not
     mapped, and two configurations naming one compressor with different nominal speeds. The station ids
     are those of GasLib-11.net. -->
<compressorStations xmlns="http://gaslib.zib.de/CompressorStations"
                    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <compressorStation id="CS01_entry03_N01">
    <compressors>
      <turboCompressor drive="GT_1" id="TC_1">
        <speedMin value="3500" unit="per_min"/>
        <speedMax value="6500" unit="per_min"/>
        <n_isoline_coeff_1 value="62.1"/>
        <n_isoline_coeff_2 value="-0.029"/>
        <n_isoline_coeff_3 value="4.3e-06"/>
        <eta_ad_isoline_coeff_1 value="1.16"/>
        <eta_ad_isoline_coeff_2 value="-0.00018"/>
        <eta_ad_isoline_coeff_3 value="6.8e-09"/>
        <surgeline_coeff_1 value="-49.9"/>
        <surgeline_coeff_2 value="27.7"/>
        <surgeline_coeff_3 value="-0.045"/>
        <chokeline_coeff_1 value="-11.8"/>
        <chokeline_coeff_2 value="7.28"/>
        <chokeline_coeff_3 value="0.057"/>
        <efficiencyOfChokeline value="0.7"/>
      </turboCompressor>
      <pistonCompressor drive="GM_1" id="PC_1">
        <speedMin unit="per_min" value="165"/>
        <speedMax unit="per_min" value="350"/>
        <operatingVolume unit="m_cube" value="0.5"/>
        <maximalTorque unit="kNm" value="120"/>
        <maximalCompressionRatio value="2"/>
        <adiabaticEfficiency value="0.95"/>
        <additionalReductionVolFlow value="0.35"/>
      </pistonCompressor>
    </compressors>
    <drives>
      <gasTurbine id="GT_1">
        <energy_rate_fun_coeff_1 value="5000"/>
        <energy_rate_fun_coeff_2 value="2.5"/>
        <energy_rate_fun_coeff_3 value="0"/>
        <power_fun_coeff_1 value="-1507.55"/>
        <power_fun_coeff_2 value="3.23595"/>
        <power_fun_coeff_3 value="-0.000215272"/>
        <power_fun_coeff_4 value="9.38"/>
        <power_fun_coeff_5 value="-0.02044"/>
        <power_fun_coeff_6 value="1.35429e-06"/>
        <power_fun_coeff_7 value="0.0448214"/>
        <power_fun_coeff_8 value="-8.49405e-05"/>
        <power_fun_coeff_9 value="5.83333e-09"/>
      </gasTurbine>
      <gasDrivenMotor id="GM_1">
        <energy_rate_fun_coeff_1 value="2629"/>
        <energy_rate_fun_coeff_2 value="2.47"/>
        <energy_rate_fun_coeff_3 value="1.4e-05"/>
        <power_fun_coeff_1 value="230.5"/>
        <power_fun_coeff_2 value="24.4"/>
        <power_fun_coeff_3 value="0.0042"/>
        <specificEnergyConsumptionMeasurements>
          <measurement>
            <compressorPower unit="kW" value="5250"/>
            <fuelConsumption unit="kW" value="15997"/>
          </measurement>
        </specificEnergyConsumptionMeasurements>
      </gasDrivenMotor>
    </drives>
    <configurations>
      <configuration confId="1" nrOfSerialStages="1">
        <stage stageNr="1" nrOfParallelUnits="2">
          <compressor id="TC_1" nominalSpeed="5200"/>
          <compressor id="PC_1" nominalSpeed="300"/>
        </stage>
      </configuration>
      <configuration confId="2" nrOfSerialStages="1">
        <stage stageNr="1" nrOfParallelUnits="1">
          <compressor id="TC_1" nominalSpeed="6000"/>
        </stage>
      </configuration>
    </configurations>
  </compressorStation>
  <compressorStation id="CS02_N04_N05">
    <compressors>
      <turboCompressor drive="EM_1" id="TC_1">
        <speedMin value="8000" unit="per_min"/>
        <speedMax value="12000" unit="per_min"/>
      </turboCompressor>
      <turboCompressor drive="EM_2" id="TC_2">
        <speedMin value="8000" unit="per_min"/>
        <speedMax value="12000" unit="per_min"/>
      </turboCompressor>
    </compressors>
    <drives>
      <electricMotor id="EM_1">
        <energy_rate_fun_coeff_1 value="0.01"/>
        <energy_rate_fun_coeff_2 value="1.02"/>
        <energy_rate_fun_coeff_3 value="0"/>
        <power_fun_coeff_1 value="-1823.18"/>
        <power_fun_coeff_2 value="1.10551"/>
        <power_fun_coeff_3 value="-3.4413e-05"/>
      </electricMotor>
      <electricMotor id="EM_2">
        <energy_rate_fun_coeff_1 value="0.01"/>
        <energy_rate_fun_coeff_2 value="1.02"/>
        <energy_rate_fun_coeff_3 value="0"/>
        <power_fun_coeff_1 value="-1823.18"/>
        <power_fun_coeff_2 value="1.10551"/>
        <power_fun_coeff_3 value="-3.4413e-05"/>
      </electricMotor>
      <steamTurbine id="ST_1">
        <energy_rate_fun_coeff_1 value="100"/>
        <energy_rate_fun_coeff_2 value="3.1"/>
        <energy_rate_fun_coeff_3 value="0"/>
      </steamTurbine>
    </drives>
    <configurations>
      <configuration confId="1" nrOfSerialStages="1">
        <stage stageNr="1" nrOfParallelUnits="2">
          <compressor id="TC_1" nominalSpeed="10000"/>
          <compressor id="TC_2" nominalSpeed="10000"/>
        </stage>
      </configuration>
    </configurations>
  </compressorStation>
</compressorStations>
