"""DICOM in (a study's series recognised and stacked) and DICOM SEG out (``recoseg[dicom]``)."""
